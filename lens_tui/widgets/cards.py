"""Metric cards: a bordered box of label / value lines."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class MetricCard(Widget):
    """A card of ``(label, value)`` rows; the values are already formatted text.

    Drawn as plain padded lines (not a rich table): cards change on every
    keypress, and this keeps their repaint cheap.
    """

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
        resized = len(rows) != len(self.rows)
        self.rows = list(rows)
        self.border_title = title
        self.border_subtitle = subtitle
        self.refresh(layout=resized)

    def value(self, label: str) -> str:
        """The shown value for ``label`` (what a user reads on the card)."""
        return dict(self.rows)[label]

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self.rows))

    def render(self) -> Text:
        width = self.size.width
        lines = []
        for label, value in self.rows:
            room = max(1, width - len(value) - 1)
            shown = label if len(label) <= room else label[: max(0, room - 1)] + "…"
            lines.append(shown.ljust(room) + " " + value)
        return Text("\n".join(lines), no_wrap=True, overflow="crop")
