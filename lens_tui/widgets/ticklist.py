"""A selection list whose ticked and unticked boxes differ by glyph, not only by colour."""

from __future__ import annotations

from rich.segment import Segment
from textual.binding import Binding
from textual.strip import Strip
from textual.widgets import SelectionList
from textual.widgets.option_list import OptionDoesNotExist

TICKED = "✔"
UNTICKED = " "


class TickList(SelectionList[int]):
    """``SelectionList`` draws ``X`` in every box and tells ticked apart by colour alone,
    which a monochrome terminal, a screenshot in print or a colour-blind user loses;
    here a ticked box holds ✔ and an unticked one is empty.
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        _, scroll_y = self.scroll_offset
        try:
            option = self.get_option_at_index(scroll_y + y)
        except OptionDoesNotExist:
            return strip
        segments = list(strip)
        if len(segments) < 2 or segments[1].text != "X":
            return strip  # not a line with a box (or Textual drew it differently)
        glyph = TICKED if option.value in self.selected else UNTICKED
        segments[1] = Segment(glyph, segments[1].style, segments[1].control)
        return Strip(segments, strip.cell_length)
