"""One-line sparkline of a metric across layers, with the selected layer highlighted."""

from __future__ import annotations

import math

from rich.text import Text
from textual.widget import Widget

from lens_tui.render import fmt

BARS = "▁▂▃▄▅▆▇█"


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def bar_levels(values: list[float | None]) -> list[int | None]:
    """Bar height 0..7 per value, scaled between the row's smallest and largest value.

    Missing values get ``None`` (drawn as a gap). A flat row sits at mid height.
    This is only the drawing scale of the sparkline; the numbers come from the engine.
    """
    finite = _finite(values)
    if not finite:
        return [None] * len(values)
    lo, hi = min(finite), max(finite)
    top = len(BARS) - 1
    levels: list[int | None] = []
    for v in values:
        if v is None or not math.isfinite(v):
            levels.append(None)
        elif hi == lo:
            levels.append(top // 2)
        else:
            levels.append(round((v - lo) / (hi - lo) * top))
    return levels


class SparkRow(Widget):
    """``label  ▁▃█▂…  min … max`` for one metric over all layers."""

    DEFAULT_CSS = """
    SparkRow {
        height: 1;
        width: 1fr;
    }
    """
    LABEL_WIDTH = 17
    RANGE_WIDTH = 23

    def __init__(self, label: str, key: str, color: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.key = key
        self.color = color
        self.values: list[float | None] = []
        self.selected: int | None = None

    def set_values(self, values: list[float | None], selected: int | None) -> None:
        self.values = list(values)
        self.selected = selected
        self.refresh()

    def bars(self) -> str:
        """The bar characters, one per layer (a space for a missing value)."""
        return "".join(" " if lv is None else BARS[lv] for lv in bar_levels(self.values))

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        text.append(self.label[: self.LABEL_WIDTH - 1].ljust(self.LABEL_WIDTH), style="bold")
        room = max(1, self.size.width - self.LABEL_WIDTH - self.RANGE_WIDTH - 1)
        count = len(self.values)
        if count == 0:
            return text
        finite = _finite(self.values)
        if not finite:
            text.append("no data".ljust(room), style="dim")
            return text
        cell = max(1, room // count) if room >= count else 1
        shown = min(count, room // cell)
        for layer, char in enumerate(self.bars()[:shown]):
            style = self.color
            if layer == self.selected:
                style = f"reverse {self.color}"
            text.append(char * cell, style=style)
        if shown < count:
            text.append("…", style="dim")
        used = shown * cell + (1 if shown < count else 0)
        text.append(" " * max(1, room - used + 1))
        span = f"{fmt(min(finite), self.key)} … {fmt(max(finite), self.key)}"
        text.append(span.rjust(self.RANGE_WIDTH), style="dim")
        return text
