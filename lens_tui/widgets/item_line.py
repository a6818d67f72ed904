"""A line of items joined by `` · ``, wrapped between items only: each item stays whole.

The Compare view's selected-layer line (every column's value and interval)
changes on every key. As a ``Static`` it was laid out by Textual's text
wrapping twice a key (to measure, then to draw), and it broke items anywhere
("kept mass A→B 47.6% [46.2%," on one line, "49.1%]" on the next). Here the
items are packed greedily and drawn line by line (``TextRows``: each line's
strip is kept until that line, the width or the colours change).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text

from lens_tui.widgets.text_strip import TextRows

#: One styled run of an item: its text and a rich style definition ("" for none).
Run = tuple[str, str]
SEPARATOR: Run = (" · ", "dim")


def run_length(runs: Sequence[Run]) -> int:
    """The cells ``runs`` take on screen."""
    return sum(cell_len(text) for text, _ in runs)


def pack(head: Sequence[Run], items: Sequence[Sequence[Run]], width: int) -> list[list[Run]]:
    """Lines of at most ``width`` characters: ``head`` then the items, `` · `` between two
    items on one line. An item moves whole to the next line when it does not fit; one
    wider than a line stays alone on its line (the drawing crops it)."""
    lines: list[list[Run]] = [list(head)]
    used = run_length(head)
    first_on_line = True  # the head counts as no item
    sep = run_length([SEPARATOR])
    for item in items:
        length = run_length(item)
        if first_on_line and used + length <= width:
            lines[-1] += item
            used += length
        elif not first_on_line and used + sep + length <= width:
            lines[-1] += [SEPARATOR, *item]
            used += sep + length
        elif not lines[-1]:
            lines[-1] += item
            used = length
        else:
            lines.append(list(item))
            used = length
        first_on_line = False
    return lines if any(lines) else []


class ItemLine(TextRows):
    """``head`` and items as packed lines (see :func:`pack`); height: one row per line."""

    DEFAULT_CSS = """
    ItemLine {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.head: tuple[Run, ...] = ()
        self.items: tuple[tuple[Run, ...], ...] = ()
        self._packed: tuple[int, list[Text]] | None = None  # (width, lines)

    def show(self, head: Sequence[Run], items: Sequence[Sequence[Run]]) -> None:
        """Show these items; a layout pass only when an auto height's line count changes."""
        head, items = tuple(head), tuple(tuple(item) for item in items)
        if (head, items) == (self.head, self.items):
            return
        self.head, self.items, self._packed = head, items, None
        self.show_rows()

    def clear(self) -> None:
        self.show((), ())

    def text_rows(self, width: int) -> list[Text]:
        """The packed lines at ``width`` (kept until the items change)."""
        if self._packed is None or self._packed[0] != width:
            lines = pack(self.head, self.items, max(1, width))
            self._packed = (width, [line_text(line) for line in lines])
        return self._packed[1]


def line_text(runs: Sequence[Run]) -> Text:
    """One packed line as a rich text (a run without a style takes the widget's)."""
    text = Text(no_wrap=True, overflow="crop")
    for run, style in runs:
        text.append(run, style=style or None)
    return text
