"""Sparklines of metrics across layers, one row each, with the selected layer highlighted."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from rich.text import Text
from textual.geometry import Region

from lens_tui.render import fmt
from lens_tui.widgets.text_strip import TextRows

BARS = "▁▂▃▄▅▆▇█"
#: Relative spread under which a row counts as constant (float noise, far below any shown digit).
FLAT_TOLERANCE = 1e-9


def bins(count: int, width: int) -> list[range]:
    """Split ``count`` layers into ``width`` consecutive groups of near-equal size (width < count)."""
    return [range(i * count // width, (i + 1) * count // width) for i in range(width)]


def most_unusual(values: list[float | None], group: range, centre: float) -> float | None:
    """The value of ``group`` farthest from the row's median ``centre``: an odd layer survives binning.

    A mean would blur one odd layer among its neighbours, and the odd layer is
    what a sparkline is for.
    """
    finite = [values[i] for i in group if values[i] is not None and math.isfinite(values[i])]
    if not finite:
        return None
    return max(finite, key=lambda v: abs(v - centre))


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def bar_levels(values: list[float | None]) -> list[int | None]:
    """Bar height 0..7 per value, scaled between the row's smallest and largest value.

    Missing values get ``None`` (drawn as a gap). A flat row sits at mid height,
    and so does a row whose spread is rounding noise (``1.0 - 1e-16`` against
    ``1.0`` would otherwise draw ▁ to █ under a range that prints ``1.0000 … 1.0000``).
    This is only the drawing scale of the sparkline; the numbers come from the engine.
    """
    finite = _finite(values)
    if not finite:
        return [None] * len(values)
    return bar_levels_on(values, min(finite), max(finite))


def bar_levels_on(values: list[float | None], lo: float, hi: float) -> list[int | None]:
    """Bar height 0..7 per value on the scale ``lo``..``hi`` (the whole row's, when binned)."""
    flat = hi - lo <= FLAT_TOLERANCE * max(1.0, abs(lo), abs(hi))
    top = len(BARS) - 1
    levels: list[int | None] = []
    for v in values:
        if v is None or not math.isfinite(v):
            levels.append(None)
        elif flat:
            levels.append(top // 2)
        else:
            levels.append(round((v - lo) / (hi - lo) * top))
    return levels


@dataclass(frozen=True)
class SparkSpec:
    """One row of the panel: its label, the metric key (for number formatting) and colour."""

    id: str
    label: str
    key: str
    color: str


class SparkPanel(TextRows):
    """One row per metric: ``label  ▁▃█▂…  min … max`` across layers, the selected layer reversed.

    A single widget draws every row (one node instead of one per metric keeps
    the app's first frame fast), line by line (:class:`TextRows`).
    """

    DEFAULT_CSS = """
    SparkPanel {
        height: auto;
        width: 1fr;
    }
    """
    LABEL_WIDTH = 17
    RANGE_WIDTH = 23

    def __init__(self, specs: list[SparkSpec], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.specs = list(specs)
        self.values: dict[str, list[float | None]] = {}
        self.selected: int | None = None
        self._texts: dict[int, tuple[tuple, Text]] = {}  # each row's, by what it shows

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.specs)

    def set_values(self, values: dict[str, list[float | None]], selected: int | None) -> None:
        values = {k: list(v) for k, v in values.items()}
        changed = [
            row
            for row, spec in enumerate(self.specs)
            if values.get(spec.id) != self.values.get(spec.id)
        ]
        whole = selected != self.selected or values.keys() != self.values.keys()
        self.values, self.selected = values, selected
        if whole:
            self._update_note()
            self.refresh()
        else:  # repaint only the rows that changed (r changes 3 of 13): less to send
            width = self.size.width
            self.refresh(*(Region(0, row, width, 1) for row in changed), repaint=bool(changed))

    def bars(self, row_id: str) -> str:
        """The bar characters of one row, one per layer (a space for a missing value)."""
        levels = bar_levels(self.values.get(row_id, []))
        return "".join(" " if lv is None else BARS[lv] for lv in levels)

    def text_rows(self, width: int) -> list[Text]:
        """Every row's text; a row is laid out again only when its values, the selected
        layer or the width change (a new r changes 5 of the 13)."""
        rows = []
        for y, spec in enumerate(self.specs):
            key = (tuple(self.values.get(spec.id, [])), self.selected, width)
            known = self._texts.get(y)
            if known is None or known[0] != key:
                known = self._texts[y] = (key, self._row(spec, width))
            rows.append(known[1])
        return rows

    def _row(self, spec: SparkSpec, width: int) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        text.append(spec.label[: self.LABEL_WIDTH - 1].ljust(self.LABEL_WIDTH), style="bold")
        values = self.values.get(spec.id, [])
        room = max(1, width - self.LABEL_WIDTH - self.RANGE_WIDTH - 1)
        count = len(values)
        if count == 0:
            return text
        finite = _finite(values)
        if not finite:
            text.append("no data".ljust(room), style="dim")
            return text
        if count <= room:
            cell, shown, selected = room // count, values, self.selected
        else:  # more layers than columns: one bar per group of layers (see ``aggregation``)
            cell = 1
            centre = statistics.median(finite)
            groups = bins(count, room)
            shown = [most_unusual(values, group, centre) for group in groups]
            selected = next((i for i, group in enumerate(groups) if self.selected in group), None)
        levels = bar_levels_on(shown, min(finite), max(finite))
        bars = "".join(char * cell for char in (" " if lv is None else BARS[lv] for lv in levels))
        if selected is None:
            text.append(bars, style=spec.color)
        else:  # three runs: before, the selected layer (reversed), after
            start, stop = selected * cell, (selected + 1) * cell
            text.append(bars[:start], style=spec.color)
            text.append(bars[start:stop], style=f"reverse {spec.color}")
            text.append(bars[stop:], style=spec.color)
        text.append(" " * max(1, room - len(bars) + 1))
        span = f"{fmt(min(finite), spec.key)} … {fmt(max(finite), spec.key)}"
        text.append(span.rjust(self.RANGE_WIDTH), style="dim")
        return text

    def aggregation(self, width: int | None = None) -> str:
        """What a bar stands for when layers outnumber columns ("" when one bar is one layer)."""
        width = self.size.width if width is None else width
        room = max(1, width - self.LABEL_WIDTH - self.RANGE_WIDTH - 1)
        count = max((len(v) for v in self.values.values()), default=0)
        if count <= room:
            return ""
        per = count / room
        return f"{count} layers in {room} bars (~{per:.1f} per bar, the most unusual shown)"

    def _update_note(self) -> None:
        self.border_subtitle = self.aggregation()

    def on_resize(self) -> None:
        self._update_note()
