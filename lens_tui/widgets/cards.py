"""Metric cards: a bordered box of label / value lines, with an optional interval beside each value."""

from __future__ import annotations

from rich.text import Text

from lens_tui.widgets.text_strip import TextRows

#: Shown in place of an interval while the background worker computes it.
PENDING = "…"


class MetricCard(TextRows):
    """A card of ``(label, value)`` rows; the values are already formatted text.

    Drawn as plain padded lines (not a rich table), line by line
    (:class:`~lens_tui.widgets.text_strip.TextRows`): cards change on every
    keypress, and this keeps their repaint cheap. Intervals (``[lo, hi]``, or
    :data:`PENDING` while they compute) are set apart from the values with
    :meth:`set_intervals`, because they arrive later, from a worker: the point
    values never wait for them. When a card is too narrow for label, value and
    interval, the label is shortened first; the interval is dropped only when
    even a one-letter label would not fit.
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
        self.intervals: dict[str, str] = {}

    def show(self, title: str, rows: list[tuple[str, str]], subtitle: str = "") -> None:
        rows = list(rows)
        if (title, rows, subtitle) == (self.border_title, self.rows, self.border_subtitle):
            return  # a new r leaves the A and B cards as they were: no repaint
        resized = len(rows) != len(self.rows)
        self.rows = rows
        self.border_title = title
        self.border_subtitle = subtitle
        self.refresh(layout=resized)

    def set_intervals(self, intervals: dict[str, str]) -> None:
        """Interval text per label (``{}`` removes them); only the labels given are shown."""
        if intervals != self.intervals:
            self.intervals = dict(intervals)
            self.refresh()

    def value(self, label: str) -> str:
        """The shown value for ``label`` (what a user reads on the card)."""
        return dict(self.rows)[label]

    def interval(self, label: str) -> str | None:
        """The interval shown beside ``label``'s value, if any."""
        return self.intervals.get(label)

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self.rows))

    def text_rows(self, width: int) -> list[Text]:
        lines = []
        for label, value in self.rows:
            interval = self.intervals.get(label)
            shown_value = value if interval is None else f"{value} {interval}"
            if interval is not None and width - len(shown_value) - 1 < 2:
                shown_value = value  # no room: the point value alone
            room = max(1, width - len(shown_value) - 1)
            shown = label if len(label) <= room else label[: max(0, room - 1)] + "…"
            lines.append(Text(shown.ljust(room) + " " + shown_value))
        return lines
