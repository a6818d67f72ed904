"""Predictions view: did the lens predict what the masks did? (``lens predict-vs-actual``)

For every evaluation result loaded (``lens evaluate --out``) whose data has a
loaded bundle, ``core.predict.predict_vs_actual`` pairs each mask's predicted
retained mass, Jaccard and every other predictor (:mod:`core.predictors`)
with the measured loss increase. This view shows each predictor's ρ with its
bootstrap interval and permutation p, over all masks and within each group
(the "tests" table), the masks (the "masks" table), and the scatter of one
predictor against the loss increase; ``p`` / ``P`` (or the palette) switch
which predictor is on the x axis. It also says which predictor the Compare
verdict uses (:mod:`core.predictor_choice`), from the same report
(:mod:`lens_tui.evidence`). Both tables sort like every table of the app
(:mod:`lens_tui.widgets.sorting`), each in its own order: ``o`` / ``O`` sort
the focused one (the masks table unless the tests table has the focus or is
the only one shown), a header click the clicked one. No number is computed here.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from core.engine import Profile
from core.formats.evaluation import Evaluation
from core.predict import Point, PredictionReport, matching_profile
from core.predictor_choice import PredictorChoice
from core.predictors import PREDICTORS
from core.rank_tests import RankTest
from lens_tui.evidence import session_evidence
from lens_tui.prediction_plot import (
    DEFAULT_PREDICTOR,
    axis_label,
    dataset_colors,
    draw_prediction,
    point_mark,
    rho_text,
    x_value,
)
from lens_tui.safe_text import printable
from lens_tui.selection import Selection
from lens_tui.views.base import SelectionView
from lens_tui.widgets.plots import ResultPlot
from lens_tui.widgets.sorting import SORT_BINDINGS, SortableView, TableSort, text_keys
from lens_tui.widgets.table import ValueCachedTable

NO_EVALUATIONS = (
    "No evaluation results loaded. Measure what your masks do with `lens evaluate --model M "
    "--masks MASK… --data D --out eval.json`, then open it beside a bundle of D: "
    "`lens browse eval.json D.safetensors` (or put eval.json in the bundles' folder)."
)

#: (header, right-aligned) of the table's columns.
COLUMNS = (  # measured Δ loss and the plotted x beside the mask, on screen at 80 columns too
    ("#", True),
    ("data", False),
    ("mask", False),
    ("Δ loss", True),
    ("x", True),  # the value of the predictor on the scatter's x axis
    ("kept", True),  # routing mass kept (the prediction); short headers keep top-1 on screen
    ("worst", True),
    ("Jacc.", True),
    ("top-1", True),
    ("criterion", False),
)


#: The masks table's figures: sorted largest first when first chosen (names and # ascending).
MASK_FIGURES = frozenset({"Δ loss", "x", "kept", "worst", "Jacc.", "top-1"})
#: The tests table's identifying columns (its ρ columns, one per group, follow them).
TEST_NAMES = ("data", "predictor")


def mask_sort_keys(
    points: list[Point], column: str, predictor: str = DEFAULT_PREDICTOR
) -> list[float | None]:
    """Each point's value in the masks table's ``column``, as a sort key.

    ``#`` is the point's number (the scatter's mark), a figure its value
    (None where unknown: last either way), a name its alphabetical rank.
    """
    if column == "#":
        return [float(number) for number in range(1, len(points) + 1)]
    figures = {
        "Δ loss": lambda p: p.loss_increase,
        "x": lambda p: x_value(p, predictor),
        "kept": lambda p: p.retained_mass,
        "worst": lambda p: p.retained_mass_min,
        "Jacc.": lambda p: p.jaccard,
        "top-1": lambda p: p.top1_agreement,
    }
    if column in figures:
        return [figures[column](p) for p in points]
    names = {"data": "dataset", "mask": "mask", "criterion": "criterion"}
    return text_keys([str(getattr(p, names[column])) for p in points])


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def row_cells(number: int, point, predictor: str = DEFAULT_PREDICTOR) -> list[str]:
    """The masks table's row of one point, as shown (``x``: the plotted predictor's value)."""
    return [
        point_mark(number),
        printable(point.dataset),
        printable(point.mask),
        f"{point.loss_increase:+.4f}",
        _pct(x_value(point, predictor)),
        _pct(point.retained_mass),
        _pct(point.retained_mass_min),
        "—" if point.jaccard is None else f"{point.jaccard:.3f}",
        f"{point.top1_agreement:.1%}",
        printable(point.criterion),
    ]


def _signed(value: float) -> str:
    """``-0.84`` as ``-.84``, ``+1.00`` kept: two decimals in four or five characters."""
    return f"{value:+.2f}".replace("0.", ".", 1) if abs(value) < 1 else f"{value:+.2f}"


def rank_cell(test: RankTest | None) -> str:
    """One rank test as a cell: ``-.84 [-.95,-.62] p.001 n19`` (ρ [95 % interval] p n)."""
    if test is None:
        return ""
    if test.spearman is None:
        return f"— n{test.n}"
    ci = "[—]" if test.ci is None else f"[{_signed(test.ci[0])},{_signed(test.ci[1])}]"
    p = ""
    if test.p_value is not None:  # the permutation p is never 0: below 1/1000 says so
        p = " p<.001" if test.p_value < 0.001 else f" p{test.p_value:.3f}".replace("p0.", "p.")
    return f"{_signed(test.spearman)} {ci}{p} n{test.n}"


def group_header(group: str) -> str:
    """``same_data`` → ``same data``, ``criterion:mass`` → ``criterion mass``."""
    return group.replace("_", " ").replace(":", " ")


def report_groups(report: PredictionReport) -> list[str]:
    """Every group with a test in the report: ``same_data`` first, then the rest in order met."""
    found = dict.fromkeys(
        group for e in report.evaluations for p in e.predictors for group in p.groups
    )
    return sorted(found, key=lambda g: g != "same_data")


def rank_sort_keys(report: PredictionReport, column: str) -> list[float | None]:
    """Each tests-table row's value in ``column``, as a sort key (rows as :func:`rank_rows`).

    Names sort by their alphabetical rank; a ρ column by ρ (a test without
    ρ, or a group the evaluation lacks, last either way).
    """
    rows = [(e, t) for e in report.evaluations for t in e.predictors]
    if column == "data":
        return text_keys([e.dataset for e, _ in rows])
    if column == "predictor":
        return text_keys([t.name for _, t in rows])
    if column == "all masks":
        tests = [t.overall for _, t in rows]
    else:
        group = {group_header(g): g for g in report_groups(report)}[column]
        tests = [t.groups.get(group) for _, t in rows]
    return [None if test is None else test.spearman for test in tests]


def rank_rows(
    report: PredictionReport, predictor: str, choice: PredictorChoice | None
) -> list[list[str]]:
    """The tests table: per evaluation and predictor, ``▶`` on x / ``✓`` used by the verdict,
    the data, the predictor, then ρ [interval] p n over all masks and within each group."""
    groups = report_groups(report)
    rows = []
    for evaluation in report.evaluations:
        for test in evaluation.predictors:
            mark = ("▶" if test.name == predictor else "") + (
                "✓" if choice is not None and test.name == choice.name else ""
            )
            rows.append(
                [
                    mark,
                    printable(evaluation.dataset),
                    test.name,
                    rank_cell(test.overall),
                    *(rank_cell(test.groups.get(group)) for group in groups),
                ]
            )
    return rows


class PredictionPlot(ResultPlot):
    """One predictor (x) against measured loss increase (y), points numbered."""

    result: PredictionReport | None

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.predictor = DEFAULT_PREDICTOR
        #: (table number, x in %, y) of every point drawn, as :func:`draw_prediction` drew them.
        self.plotted: list[tuple[int, float, float]] = []

    def show(self, report: PredictionReport, predictor: str = DEFAULT_PREDICTOR) -> None:
        self.predictor = predictor
        self.plotted = draw_prediction(self.start(report), report, predictor)
        self.refresh()

    def clear_plot(self, message: str = "") -> None:
        self.plotted = []
        super().clear_plot(message)


class PredictView(SelectionView, SortableView, Vertical, can_focus=True):
    """The predictors' rank tests, the masks table and the scatter of one predictor."""

    #: What the help screen says of this view (Markdown, after "**Predict** — ").
    SUMMARY = """\
    `lens evaluate` results beside the bundles of their data: every
    predictor's Spearman ρ against the measured loss increase, with its 95 %
    bootstrap interval over masks and permutation p, over all masks and within
    each group (masks from the evaluated data's own group, masks of one
    criterion); the masks table; and the scatter of one predictor (`p` / `P`
    or the palette's "Predict x:" entries switch it; ▶ marks it, ✓ marks the
    predictor the Compare verdict uses, if one is validated). Both tables
    sort: `o` / `O` the focused one, or click a header."""

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
    PredictView #predict-tests {
        height: auto;
        max-height: 35%;
    }
    PredictView #predict-table {
        height: auto;
        max-height: 25%;
    }
    PredictView #predict-plot {
        height: 1fr;
        min-height: 8;
    }
    PredictView #predict-legend {
        height: 1;
        padding: 0 1;
    }
    PredictView.-plot-only #predict-table, PredictView.-plot-only #predict-tests {
        display: none;
    }
    PredictView.-tests-only #predict-table, PredictView.-tests-only #predict-plot,
    PredictView.-tests-only #predict-legend {
        display: none;
    }
    PredictView.-tests-only #predict-tests { max-height: 100%; height: 1fr; }
    PredictView.-table-only #predict-tests, PredictView.-table-only #predict-plot,
    PredictView.-table-only #predict-legend {
        display: none;
    }
    PredictView.-table-only #predict-table { max-height: 100%; height: 1fr; }
    """

    BINDINGS = [
        Binding(
            "v",
            "toggle_layout",
            "Layout",
            tooltip="All, plot only, predictor tests only, masks table only",
        ),
        Binding(
            "p",
            "step_predictor(1)",
            "next x",
            group=Binding.Group("x", compact=True),
            tooltip="Plot the next predictor on the x axis",
        ),
        Binding(
            "P",
            "step_predictor(-1)",
            "prev x",
            group=Binding.Group("x", compact=True),
            tooltip="Plot the previous predictor on the x axis",
        ),
        *SORT_BINDINGS,
    ]

    #: The layouts ``v`` steps through (CSS classes; "" shows everything).
    LAYOUTS = ("", "-plot-only", "-tests-only", "-table-only")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: PredictionReport | None = None
        self.choice: PredictorChoice | None = None  # what the Compare verdict uses
        self.predictor = DEFAULT_PREDICTOR  # on the scatter's x axis
        self._note = ""  # what is said of evaluations without a loaded bundle
        # One order per table (their columns differ): the tests in the report's order
        # (by data, ties in predictor order), the masks by number (the scatter's marks).
        # The tests table's ρ columns are set per report (its groups), in _fill_tables.
        self.sorts = {
            "predict-tests": TableSort(TEST_NAMES, "data"),
            "predict-table": TableSort(
                tuple(header for header, _ in COLUMNS), "#", largest_first=MASK_FIGURES
            ),
        }

    def compose(self) -> ComposeResult:
        yield Static(id="predict-message")
        yield Static(id="predict-summary")
        yield ValueCachedTable(id="predict-tests", cursor_type="row", zebra_stripes=True)
        yield ValueCachedTable(id="predict-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="predict-legend")
        yield PredictionPlot(id="predict-plot")

    def on_mount(self) -> None:
        # At 80×24 the tables and the scatter share 13 rows: start on the plot alone
        # there (the tables are a key away) so the scatter is tall enough to read.
        self._layout = 1 if self.app.size.height < 40 else 0
        self._apply_layout()

    # ------------------------------------------------------------------ keys and palette

    def action_toggle_layout(self) -> None:
        """The next layout; the focus goes to what it shows (the view itself on the plot alone).

        A hidden table loses the focus, and with nothing focused in the view its
        keys (``v``, ``p``, ``o``) would no longer reach it.
        """
        self._layout = (self._layout + 1) % len(self.LAYOUTS)
        self._apply_layout()
        layout = self.LAYOUTS[self._layout]
        if layout == "-plot-only":
            self.focus(scroll_visible=False)
        else:
            target = "#predict-tests" if layout == "-tests-only" else "#predict-table"
            self.query_one(target, DataTable).focus(scroll_visible=False)

    def _apply_layout(self) -> None:
        for name in self.LAYOUTS[1:]:
            self.remove_class(name)
        if self.LAYOUTS[self._layout]:
            self.add_class(self.LAYOUTS[self._layout])
        self.refresh_bindings()  # o / O are off while no table is shown

    def table_sort(self, table: DataTable | None = None) -> TableSort | None:
        """The clicked table's sort; for ``o`` / ``O``, the sort of the table in view.

        That is the only table shown, else the focused one, else the masks
        table (its numbers are the scatter's marks); none on the plot alone
        or before a report is shown.
        """
        if self.report is None:
            return None
        if table is not None:
            return self.sorts.get(table.id or "")
        layout = self.LAYOUTS[self._layout]
        if layout == "-plot-only":
            return None
        if layout == "-tests-only":
            return self.sorts["predict-tests"]
        focused = self.screen.focused
        if layout == "" and focused is not None and focused.id == "predict-tests":
            return self.sorts["predict-tests"]
        return self.sorts["predict-table"]

    def resort(self) -> None:
        if self.report is not None:
            self._fill_tables(self.report, self.predictor, rebuild=False)

    def action_step_predictor(self, step: int) -> None:
        """Plot the next (``step`` 1) or previous (−1) predictor of :data:`PREDICTORS`."""
        index = PREDICTORS.index(self.predictor) if self.predictor in PREDICTORS else 0
        self.set_predictor(PREDICTORS[(index + step) % len(PREDICTORS)])

    def set_predictor(self, predictor: str) -> None:
        """Put ``predictor`` on the x axis: scatter, x column, ▶ marks and summary follow."""
        if predictor not in PREDICTORS:
            raise ValueError(f"unknown predictor {predictor!r}")
        self.predictor = predictor
        if self.report is not None:
            self._paint()

    @classmethod
    def palette_commands(cls, app) -> Iterable[SystemCommand]:
        """One "Predict x: NAME" entry per predictor (the app lists every view's entries).

        A class method: the palette offers them before the view is first shown
        (views mount lazily); choosing one shows the view, then sets its x.
        """
        for name in PREDICTORS:
            yield SystemCommand(
                f"Predict x: {name}",
                f"Plot {axis_label(name)} against the loss increase (Predict view)",
                lambda n=name: cls._open_with(app, n),
            )

    @classmethod
    def _open_with(cls, app, predictor: str) -> None:
        app.action_view(next(spec.id for spec in app.views if spec.view is cls))

        def apply() -> None:
            views = app.query(cls)
            if views:
                views.first().set_predictor(predictor)
            else:  # not mounted yet: it will be after this refresh
                app.call_after_refresh(apply)

        apply()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row of the tests table plots that row's predictor."""
        if event.data_table.id != "predict-tests" or event.row_key.value is None:
            return
        event.stop()
        self.set_predictor(event.row_key.value.split("\x00")[-1])

    # ------------------------------------------------------------------ showing

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
        evidence = session_evidence(evaluations, profiles)
        if evidence.report is None:
            self.show_message(evidence.error or "no prediction")
            return
        self.report = evidence.report
        self.choice = evidence.choice
        self._note = note
        self._paint()
        self.refresh_bindings()

    def _paint(self) -> None:
        report = self.report
        assert report is not None
        predictor = self.predictor
        self._set_message(self._note)
        self.query_one("#predict-summary", Static).update(self._summary(report, predictor))
        self._fill_tables(report, predictor)
        legend = Text("colour = data: ", style="dim")
        for name, (r, g, b) in dataset_colors(report, predictor):
            legend.append(f"■ {name}  ", style=f"rgb({r},{g},{b})")
        legend.append("marks: table # (v)", style="dim")
        self.query_one("#predict-legend", Static).update(legend)
        self.query_one("#predict-plot", PredictionPlot).show(report, predictor)

    def _summary(self, report: PredictionReport, predictor: str) -> Text:
        """Which predictor is on x and its ρ; which one the Compare verdict uses; the verdict."""
        summary = Text()
        position = f"{PREDICTORS.index(predictor) + 1}/{len(PREDICTORS)}"
        summary.append("x = ", style="dim")
        summary.append(predictor, style="bold")
        summary.append(f" ({position}, p/P): ρ vs Δ loss ", style="dim")
        summary.append(rho_text(report.rho(predictor)), style="bold")
        summary.append(f" over {len(report.points)} masks · Jaccard ", style="dim")
        summary.append(rho_text(report.rho_jaccard), style="bold")
        summary.append(" (negative = ordered right)\n", style="dim")
        choice = self.choice
        summary.append("Compare's verdict uses ", style="dim")
        if choice is not None and choice.validated:
            summary.append(f"✓ {choice.name}", style="bold green")
            summary.append(": best-validated among similar masks\n", style="dim")
        else:
            summary.append("relative retained mass", style="bold yellow")
            summary.append(": no predictor validated among similar masks\n", style="dim")
        summary.append(report.verdict)
        return summary

    def _fill_tables(self, report: PredictionReport, predictor: str, rebuild: bool = True) -> None:
        """Both tables, each in its sort order (the tests table's ρ columns: one per group).

        ``rebuild`` False: only the order changed, so rows are reordered, not refilled.
        """
        groups = tuple(group_header(g) for g in report_groups(report))
        tests = self.sorts["predict-tests"].over(
            (*TEST_NAMES, "all masks", *groups), "data", frozenset(("all masks", *groups))
        )
        self.sorts["predict-tests"] = tests
        self._fill(
            self.query_one("#predict-tests", ValueCachedTable),
            [("", False), *((name, False) for name in tests.columns)],
            rank_rows(report, predictor, self.choice),
            [f"{e.evaluation}\x00{t.name}" for e in report.evaluations for t in e.predictors],
            tests,
            rank_sort_keys(report, tests.column),
            rebuild,
        )
        masks = self.sorts["predict-table"]
        self._fill(
            self.query_one("#predict-table", ValueCachedTable),
            list(COLUMNS),
            [row_cells(n, point, predictor) for n, point in enumerate(report.points, start=1)],
            [str(n) for n in range(1, len(report.points) + 1)],
            masks,
            mask_sort_keys(report.points, masks.column, predictor),
            rebuild,
        )

    @staticmethod
    def _fill(
        table: ValueCachedTable,
        columns: list[tuple[str, bool]],
        rows: list[list[str]],
        keys: list[str],
        sort: TableSort,
        sort_keys: list[float | None],
        rebuild: bool = True,
    ) -> None:
        """Fill ``table`` in ``sort``'s order, the cursor kept on its row's key.

        A switch of x or a new sort must not lose the row the user is on: it
        stays selected wherever the order puts it (or on the same line, if gone).
        Without ``rebuild``, rows already shown are only reordered and the headers
        relabelled: at hundreds of masks, refilling cost a sort key ~0.1 s.
        """
        cursor = table.cursor_row
        kept = None
        if 0 <= cursor < table.row_count:
            kept = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        labels = {
            header: sort.label(header, header, "right" if right else "left")
            for header, right in columns
        }
        order = [keys[int(i)] for i in sort.order(sort_keys)]
        shown_columns = [column.key.value for column in table.ordered_columns]
        shown_rows = sorted(str(row.key.value) for row in table.ordered_rows)
        if not rebuild and shown_columns == list(labels) and shown_rows == sorted(keys):
            table.set_column_labels(dict(labels))
            table.order_rows(order)
        else:
            table.clear(columns=True)
            for header, label in labels.items():
                table.add_column(label, key=header)
            cells_of = dict(zip(keys, rows))
            for key in order:
                table.add_row(
                    *(
                        Text(cell, justify="right" if right else "left", no_wrap=True)
                        for cell, (_, right) in zip(cells_of[key], columns)
                    ),
                    key=key,
                )
        if rows:
            row = table.get_row_index(kept) if kept in keys else min(cursor, len(rows) - 1)
            table.move_cursor(row=row, scroll=kept in keys)

    def show_message(self, message: str) -> None:
        self.report = None
        self.choice = None
        self._set_message(message)
        self.query_one("#predict-summary", Static).update("")
        self.query_one("#predict-tests", DataTable).clear(columns=True)
        self.query_one("#predict-table", DataTable).clear(columns=True)
        self.query_one("#predict-legend", Static).update("")
        self.query_one("#predict-plot", PredictionPlot).clear_plot()
        self.refresh_bindings()

    def _set_message(self, message: str) -> None:
        box = self.query_one("#predict-message", Static)
        box.update(Text(printable(message), style="bold yellow"))
        box.display = bool(message)
