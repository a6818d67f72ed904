"""A line of items joined by `` · ``, wrapped between items only: each item stays whole.

The Compare view's selected-layer line (every column's value and interval)
changes on every key. As a ``Static`` it was laid out by Textual's text
wrapping twice a key (to measure, then to draw), and it broke items anywhere
("kept mass A→B 47.6% [46.2%," on one line, "49.1%]" on the next). Here the
items are packed greedily, drawn line by line (Textual's line API), and each
line's strip is kept until the items, the width or the colours change.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style as RichStyle
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

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


class ItemLine(Widget):
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
        self._packed: tuple[int, list[list[Run]]] | None = None  # (width, lines)
        self._strips: dict[int, tuple[tuple, Strip]] = {}

    def show(self, head: Sequence[Run], items: Sequence[Sequence[Run]]) -> None:
        """Show these items; a layout pass only when an auto height's line count changes."""
        head, items = tuple(head), tuple(tuple(item) for item in items)
        if (head, items) == (self.head, self.items):
            return
        width = self.size.width
        before = len(self.lines(width)) if width else None
        self.head, self.items, self._packed = head, items, None
        fixed = self.styles.height is not None and not self.styles.height.is_auto
        self.refresh(layout=not fixed and (before is None or len(self.lines(width)) != before))

    def clear(self) -> None:
        self.show((), ())

    def lines(self, width: int) -> list[list[Run]]:
        """The packed lines at ``width`` (kept until the items change)."""
        if self._packed is None or self._packed[0] != width:
            self._packed = (width, pack(self.head, self.items, max(1, width)))
        return self._packed[1]

    @property
    def plain(self) -> str:
        """What the lines read at the current width, one per row (all of them, none cropped)."""
        return "\n".join("".join(t for t, _ in line) for line in self.lines(self.size.width))

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Text:
        """The lines as one text (for what reads a widget's render; the screen uses lines)."""
        text = Text(no_wrap=True, overflow="crop")
        for index, line in enumerate(self.lines(self.size.width)):
            if index:
                text.append("\n")
            for run, style in line:
                text.append(run, style=style or None)
        return text

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.visual_style.rich_style
        lines = self.lines(width)
        if y >= len(lines):
            return Strip.blank(width, base)
        key = (tuple(lines[y]), width, base)
        known = self._strips.get(y)
        if known is not None and known[0] == key:
            return known[1]
        segments = [
            Segment(run, base + RichStyle.parse(style) if style else base)
            for run, style in lines[y]
        ]
        strip = Strip(segments, run_length(lines[y])).crop_extend(0, width, base)
        self._strips[y] = (key, strip)
        return strip
