"""Metric cards: a bordered box of label / value lines."""

from __future__ import annotations

from rich.table import Table
from textual.widgets import Static


class MetricCard(Static):
    """A card of ``(label, value)`` rows; the values are already formatted text."""

    DEFAULT_CSS = """
    MetricCard {
        border: round $primary-darken-1;
        padding: 0 1;
        height: auto;
        width: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: list[tuple[str, str]] = []

    def show(self, title: str, rows: list[tuple[str, str]], subtitle: str = "") -> None:
        self.rows = list(rows)
        self.border_title = title
        self.border_subtitle = subtitle
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        for label, value in rows:
            grid.add_row(label, value)
        self.update(grid)

    def value(self, label: str) -> str:
        """The shown value for ``label`` (what a user reads on the card)."""
        return dict(self.rows)[label]
