"""Predictions view: did the lens predict what the masks did? (``lens predict-vs-actual``)

For every evaluation result loaded (``lens evaluate --out``) whose data has a
loaded bundle, ``core.predict.predict_vs_actual`` pairs each mask's predicted
retained mass and Jaccard with the measured loss increase; this view shows
the table, the Spearman correlations with a verdict, and the scatter. No
number is computed here.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from core.engine import Profile
from core.errors import LensError
from core.formats.evaluation import Evaluation
from core.predict import PredictionReport, matching_profile, predict_vs_actual
from lens_tui.prediction_plot import dataset_colors, draw_prediction, point_mark, rho_text
from lens_tui.safe_text import printable
from lens_tui.selection import Selection
from lens_tui.views.base import SelectionView
from lens_tui.widgets.plots import ResultPlot
from lens_tui.widgets.sorting import SORT_BINDINGS, SortableView, TableSort
from lens_tui.widgets.table import ValueCachedTable

NO_EVALUATIONS = (
    "No evaluation results loaded. Measure what your masks do with `lens evaluate --model M "
    "--masks MASK… --data D --out eval.json`, then open it beside a bundle of D: "
    "`lens browse eval.json D.safetensors` (or put eval.json in the bundles' folder)."
)

#: (header, right-aligned) of the table's columns.
COLUMNS = (  # measured Δ loss beside the mask, so it is on screen at 80 columns too
    ("#", True),
    ("data", False),
    ("mask", False),
    ("Δ loss", True),
    ("kept", True),  # routing mass kept (the prediction); short headers keep top-1 on screen
    ("worst", True),
    ("Jacc.", True),
    ("top-1", True),
    ("criterion", False),
)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def sort_keys(points: list, header: str) -> list[float | None]:
    """Each point's value in column ``header``, as a number (names by their alphabetical rank)."""
    if header == "#":
        return [float(number) for number in range(1, len(points) + 1)]
    numeric = {
        "Δ loss": lambda p: p.loss_increase,
        "kept": lambda p: p.retained_mass,
        "worst": lambda p: p.retained_mass_min,
        "Jacc.": lambda p: p.jaccard,
        "top-1": lambda p: p.top1_agreement,
    }
    if header in numeric:
        return [numeric[header](p) for p in points]
    names = [str(getattr(p, {"data": "dataset"}.get(header, header))).casefold() for p in points]
    rank = {name: float(i) for i, name in enumerate(sorted(set(names)))}
    return [rank[name] for name in names]


def row_cells(number: int, point) -> list[str]:
    """The table row of one point, as shown."""
    return [
        point_mark(number),
        printable(point.dataset),
        printable(point.mask),
        f"{point.loss_increase:+.4f}",
        _pct(point.retained_mass),
        _pct(point.retained_mass_min),
        "—" if point.jaccard is None else f"{point.jaccard:.3f}",
        f"{point.top1_agreement:.1%}",
        printable(point.criterion),
    ]


class PredictionPlot(ResultPlot):
    """Predicted retained mass (x) against measured loss increase (y), points numbered."""

    result: PredictionReport | None

    def show(self, report: PredictionReport) -> None:
        draw_prediction(self.start(report), report)
        self.refresh()


class PredictView(SelectionView, SortableView, Vertical):
    """The predicted-vs-actual table, its rank correlations and the scatter."""

    #: What the help screen says of this view (Markdown, after "**Predict** — ").
    SUMMARY = """\
    `lens evaluate` results beside the bundles of their data:
    predicted retained mass and Jaccard against the measured loss increase per
    mask, the Spearman rank correlation, and the scatter."""

    DEFAULT_CSS = """
    PredictView {
        height: 1fr;
    }
    PredictView #predict-message {
        height: auto;
        padding: 0 1;
    }
    PredictView #predict-summary {
        height: auto;
        padding: 0 1;
    }
    PredictView #predict-table {
        height: auto;
        max-height: 40%;
    }
    PredictView #predict-plot {
        height: 1fr;
        min-height: 8;
    }
    PredictView #predict-legend {
        height: 1;
        padding: 0 1;
    }
    PredictView.-plot-only #predict-table { display: none; }
    PredictView.-table-only #predict-plot, PredictView.-table-only #predict-legend {
        display: none;
    }
    """

    BINDINGS = [
        Binding(
            "v", "toggle_layout", "Table/plot", tooltip="Table and plot, plot only, table only"
        ),
        *SORT_BINDINGS,
    ]

    #: The layouts ``v`` steps through: (CSS class, what the footer hint says next).
    LAYOUTS = ("", "-plot-only", "-table-only")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: PredictionReport | None = None
        # By the table's number (the scatter's marks) until o / O / a header click.
        self.sorting = TableSort(
            tuple(header for header, _ in COLUMNS),
            "#",
            largest_first=frozenset({"Δ loss", "kept", "worst", "Jacc.", "top-1"}),
        )

    def compose(self) -> ComposeResult:
        yield Static(id="predict-message")
        yield Static(id="predict-summary")
        yield ValueCachedTable(
            id="predict-table", cursor_type="row", zebra_stripes=True, fixed_columns=1
        )
        yield Static(id="predict-legend")
        yield PredictionPlot(id="predict-plot")

    def on_mount(self) -> None:
        # At 80×24 the table and the scatter share 13 rows: start on the plot alone
        # there (the table is one key away) so the scatter is tall enough to read.
        self._layout = 1 if self.app.size.height < 40 else 0
        self._apply_layout()

    def action_toggle_layout(self) -> None:
        self._layout = (self._layout + 1) % len(self.LAYOUTS)
        self._apply_layout()

    def _apply_layout(self) -> None:
        for name in self.LAYOUTS[1:]:
            self.remove_class(name)
        if self.LAYOUTS[self._layout]:
            self.add_class(self.LAYOUTS[self._layout])

    def depends_on(self, selection: Selection) -> object:
        return (selection.evaluations, selection.profiles)

    def show_selection(self, selection: Selection) -> None:
        self.show(list(selection.evaluations), list(selection.profiles))

    def show(self, evaluations: list[Evaluation], profiles: list[Profile]) -> None:
        """Show predicted vs actual for every evaluation whose data has a loaded bundle."""
        if not evaluations:
            self.show_message(NO_EVALUATIONS)
            return
        paired = [ev for ev in evaluations if matching_profile(ev, profiles) is not None]
        unpaired = [ev for ev in evaluations if ev not in paired]
        note = ""
        if unpaired:
            names = ", ".join(f"{ev.name} (data '{printable(ev.dataset)}')" for ev in unpaired)
            note = f"no loaded bundle of the data of {names}: collect one with lens collect"
        if not paired:
            self.show_message(note)
            return
        try:
            report = predict_vs_actual(paired, profiles)
        except LensError as exc:
            self.show_message(str(exc))
            return
        self.report = report
        self._set_message(note)
        summary = Text()
        summary.append("Spearman ρ ", style="dim")
        summary.append("retained mass vs Δ loss ", style="dim")
        summary.append(rho_text(report.rho_retained_mass), style="bold")
        summary.append("   Jaccard vs Δ loss ", style="dim")
        summary.append(rho_text(report.rho_jaccard), style="bold")
        summary.append(f"   ({len(report.points)} masks; negative = ordered right)\n", style="dim")
        summary.append(report.verdict)
        self.query_one("#predict-summary", Static).update(summary)
        self._fill_table(report)
        legend = Text("colour = data: ", style="dim")
        for name, (r, g, b) in dataset_colors(report):
            legend.append(f"■ {name}  ", style=f"rgb({r},{g},{b})")
        legend.append("marks: table # (v)", style="dim")
        self.query_one("#predict-legend", Static).update(legend)
        self.query_one("#predict-plot", PredictionPlot).show(report)

    def _fill_table(self, report: PredictionReport) -> None:
        """One row per point, in the sort order; the cursor stays on the point it was on."""
        table = self.query_one("#predict-table", DataTable)
        kept = None
        if table.row_count and 0 <= table.cursor_row < table.row_count:
            kept = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear(columns=True)
        for header, right in COLUMNS:
            justify = "right" if right else "left"
            table.add_column(self.sorting.label(header, header, justify), key=header)
        points = list(report.points)
        order = self.sorting.order(sort_keys(points, self.sorting.column))
        for i in order:
            cells = row_cells(int(i) + 1, points[i])
            table.add_row(
                *(
                    Text(cell, justify="right" if right else "left", no_wrap=True)
                    for cell, (_, right) in zip(cells, COLUMNS)
                ),
                key=str(int(i) + 1),
            )
        if kept is not None and kept in {str(int(i) + 1) for i in order}:
            table.move_cursor(row=table.get_row_index(kept), scroll=True)

    def resort(self) -> None:
        if self.report is not None:
            self._fill_table(self.report)

    def show_message(self, message: str) -> None:
        self.report = None
        self._set_message(message)
        self.query_one("#predict-summary", Static).update("")
        self.query_one("#predict-table", DataTable).clear(columns=True)
        self.query_one("#predict-legend", Static).update("")
        self.query_one("#predict-plot", PredictionPlot).clear_plot()

    def _set_message(self, message: str) -> None:
        box = self.query_one("#predict-message", Static)
        box.update(Text(printable(message), style="bold yellow"))
        box.display = bool(message)
