"""N-way view: mean JS / Jaccard@r / retained mass for every pair of the chosen bundles.

``core.matrix.matrix`` computes the k × k figures; this view picks which
bundles take part (a selection list) and heat-colours the cells.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, SelectionList, Static

from core.engine import Profile
from core.errors import LensError
from core.matrix import MATRIX_KEYS, Matrix, matrix
from lens_tui.render import fmt

TITLES = {
    "js_divergence": "mean JS divergence (bits): 0 = same routing",
    "jaccard": "mean Jaccard@{r} of the top-r masks: 1 = same experts kept",
    "retained_mass": "retained mass at r={r}: row's mask keeps this much of column's mass",
}
#: Whether a larger value means "more alike" (colours run from alike to different).
HIGHER_IS_ALIKE = {"js_divergence": False, "jaccard": True, "retained_mass": True}
ALIKE_RGB = (24, 110, 60)
MIDDLE_RGB = (150, 125, 20)
DIFFERENT_RGB = (150, 40, 40)


def heat(value: float | None, lo: float, hi: float, higher_is_alike: bool) -> str:
    """Background colour for a cell: green (alike) → amber → red (different), on the shown range."""
    if value is None or not math.isfinite(value):
        return ""
    t = 0.0 if hi <= lo else (value - lo) / (hi - lo)
    if higher_is_alike:
        t = 1.0 - t
    if t <= 0.5:
        start, end, u = ALIKE_RGB, MIDDLE_RGB, t * 2
    else:
        start, end, u = MIDDLE_RGB, DIFFERENT_RGB, (t - 0.5) * 2
    rgb = tuple(round(s + (e - s) * u) for s, e in zip(start, end))
    return "on #{:02x}{:02x}{:02x}".format(*rgb)


class MatrixView(Horizontal):
    """Pick bundles on the left (space toggles); the matrix of the chosen metric on the right."""

    BINDINGS = [
        Binding("m", "next_metric", "Metric", tooltip="Cycle JS / Jaccard / retained mass"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric = MATRIX_KEYS[0]
        self.result: Matrix | None = None
        self._profiles: list[Profile] = []
        self._labels: list[str] = []
        self._r = 1

    def compose(self) -> ComposeResult:
        yield SelectionList[int](id="matrix-bundles")
        with Vertical(id="matrix-main"):
            yield Static(id="matrix-title")
            yield DataTable(id="matrix-table", cursor_type="none")
            yield Static(id="matrix-legend")

    def on_mount(self) -> None:
        self.query_one("#matrix-bundles").border_title = "bundles (space)"

    def show(self, profiles: list[Profile], labels: list[str], r: int) -> None:
        """Offer ``labels`` for picking and show the matrix of the ticked ones at budget r."""
        picker = self.query_one("#matrix-bundles", SelectionList)
        if labels != self._labels:
            ticked = {self._labels[i] for i in picker.selected if i < len(self._labels)}
            with picker.prevent(SelectionList.SelectedChanged):
                picker.clear_options()
                picker.add_options(
                    [
                        (label, i, label in ticked or label not in self._labels)
                        for i, label in enumerate(labels)
                    ]
                )
                if labels and picker.highlighted is None:
                    picker.highlighted = 0
        self._profiles, self._labels, self._r = list(profiles), list(labels), r
        self._redraw()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        self._redraw()

    def _redraw(self) -> None:
        chosen = sorted(self.query_one("#matrix-bundles", SelectionList).selected)
        if len(chosen) < 2:
            self.show_message("tick at least two bundles (space) for the N-way comparison")
            return
        profiles = [self._profiles[i] for i in chosen]
        labels = [self._labels[i] for i in chosen]
        r = self._r
        table = self.query_one("#matrix-table", DataTable)
        title = self.query_one("#matrix-title", Static)
        legend = self.query_one("#matrix-legend", Static)
        table.clear(columns=True)
        self.result = None
        try:
            result = matrix(profiles, r)
        except LensError as exc:
            title.update(Text(str(exc), style="bold yellow"))
            legend.update("")
            return
        self.result = result
        key = self.metric
        values = result.to_json()[key]
        title.update(Text(TITLES[key].format(r=r), style="bold"))
        off = [
            v for i, row in enumerate(values) for j, v in enumerate(row) if i != j and v is not None
        ]
        lo, hi = (min(off), max(off)) if off else (0.0, 0.0)
        table.add_column("", key="name")
        for j in range(len(profiles)):
            table.add_column(f"#{j + 1}", key=str(j))
        for i, (label, row) in enumerate(zip(labels, values)):
            cells: list[Text] = [Text(f"#{i + 1} {label}", no_wrap=True)]
            for j, value in enumerate(row):
                style = "dim" if i == j else heat(value, lo, hi, HIGHER_IS_ALIKE[key])
                cells.append(Text(fmt(value, key), style=style, justify="right"))
            table.add_row(*cells, key=str(i))
        legend_text = Text("colour: ", style="dim")
        legend_text.append(" alike ", style="on #{:02x}{:02x}{:02x}".format(*ALIKE_RGB))
        legend_text.append(" → ", style="dim")
        legend_text.append(" different ", style="on #{:02x}{:02x}{:02x}".format(*DIFFERENT_RGB))
        legend_text.append("  (over the off-diagonal cells)", style="dim")
        legend.update(legend_text)

    def show_message(self, message: str) -> None:
        self.result = None
        self.query_one("#matrix-table", DataTable).clear(columns=True)
        self.query_one("#matrix-title", Static).update(Text(message, style="bold yellow"))
        self.query_one("#matrix-legend", Static).update("")

    def action_next_metric(self) -> None:
        index = MATRIX_KEYS.index(self.metric)
        self.metric = MATRIX_KEYS[(index + 1) % len(MATRIX_KEYS)]
        if self._profiles:
            self._redraw()
