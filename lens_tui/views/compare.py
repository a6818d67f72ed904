"""The main view: dataset A vs B at budget r — cards, verdict, per-layer sparklines, table, plot.

Everything shown comes from ``core.engine.compare`` / ``verdict`` /
``layer_distribution`` for the app's current selection, read through the
typed accessors of :class:`~core.engine.Comparison` (``mean``,
``univariate_mean``, ``series``); numbers go through ``lens_tui.render.fmt``
exactly as the CLI prints them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.timer import Timer
from textual.widgets import DataTable, Static

from core import metrics as m
from core.engine import (
    Comparison,
    Profile,
    Side,
    compare,
    is_safe,
    layer_distribution,
    verdict,
)
from core.errors import LensError
from core.predictor_choice import VerdictBasis, verdict_basis
from lens_tui import evidence as ev
from lens_tui.intervals_process import CompareIntervals
from lens_tui.messages import SelectionEdited
from lens_tui.render import BIVARIATE_LABELS, fmt
from lens_tui.selection import NO_BUNDLES, Selection
from lens_tui.views import compare_intervals as ci
from lens_tui.views.base import SelectionView
from lens_tui.widgets.cards import PENDING, MetricCard
from lens_tui.widgets.colors import A_HEX, B_HEX
from lens_tui.widgets.item_line import ItemLine
from lens_tui.widgets.plots import ExpertPlot
from lens_tui.widgets.sorting import SORT_BINDINGS, SortableView, TableSort
from lens_tui.widgets.sparkline import SparkPanel, SparkSpec
from lens_tui.widgets.table import ValueCachedTable
from lens_tui.widgets.text_strip import WrappedText

#: Seconds the verdict's text must rest before a shorter text gives back its lines.
VERDICT_FIT_S = 1.0


@dataclass(frozen=True)
class Column:
    """One per-layer column: a bivariate key, or a univariate key of side "a" / "b"."""

    key: str
    side: str  # "" for bivariate, "a" or "b" for univariate
    header: str

    @property
    def id(self) -> str:
        return f"{self.side}:{self.key}" if self.side else self.key

    def series(self, comparison: Comparison) -> list[float | None]:
        """This column's value for every layer of ``comparison``."""
        side: Side | None = self.side or None  # type: ignore[assignment]
        return comparison.series(self.key, side)

    def source(self, comparison: Comparison) -> object:
        """The engine's array behind :meth:`series` (a univariate one is the profile's own,
        the same object for every r, so a view may keep what it made of it)."""
        side: Side | None = self.side or None  # type: ignore[assignment]
        return comparison.values(self.key, side)

    def value(self, row: dict) -> float | None:
        """The same figure read from one layer of ``lens compare --json`` (to check against)."""
        return row[self.side][self.key] if self.side else row[self.key]


CARD_LABELS = {
    "sparsity_pct": "sparsity %",
    "variance": "variance",
    "n_eff": "N_eff",
    "entropy_bits": "entropy",
}
SIDE_COLORS = {"": "white", "a": A_HEX, "b": B_HEX}
SHORT_UNIVARIATE = {
    "sparsity_pct": "sparse%",
    "variance": "var",
    "n_eff": "N_eff",
    "entropy_bits": "H bits",
}
COLUMNS: tuple[Column, ...] = (
    *(Column(k, "", BIVARIATE_LABELS[k]) for k in m.BIVARIATE_KEYS),
    *(
        Column(k, side, f"{SHORT_UNIVARIATE[k]} {side.upper()}")
        for k in ("n_eff", "entropy_bits", "sparsity_pct", "variance")
        for side in ("a", "b")
    ),
)


#: The per-layer table's columns: (key, header); the layer is the row label (fixed column).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("layer", "layer"),
    *((column.id, column.header) for column in COLUMNS),
)


class CompareView(SelectionView, SortableView, VerticalScroll):
    """A vs B: univariate and bivariate cards, the verdict, sparklines, layer table and plot."""

    #: What the help screen says of this view (Markdown, after "**Compare** — ").
    SUMMARY = """\
    dataset **A** vs **B** at budget **r** (experts kept per layer)
    and sparsity threshold **τ**: univariate cards (sparsity, variance, N_eff,
    entropy), bivariate means (JS, Jaccard@r, Pearson of energy, retained mass),
    the verdict (retained mass relative to the best top-r mask ≥ 95 %: a safe
    surrogate; or, when the loaded evaluations validate a predictor among
    masks of similar data, that predictor relative to the target's own mask,
    named in the verdict), one sparkline per metric across layers, the per-layer table, and
    the selected layer's expert distributions P_l(A) vs P_l(B) with the kept
    experts marked."""

    BINDINGS = [
        Binding(
            "l",
            "toggle_layers",
            "Layers ⇅",
            tooltip="Jump to the per-layer table and plot, or back",
        ),
        *SORT_BINDINGS,
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.comparison: Comparison | None = None
        self.selected_layer = 0
        self._series: dict[str, list[float | None]] = {}
        # By column id: (the engine's array, its values, its table cells); see _read_columns.
        self._columns: dict[str, tuple[object, list[float | None], list[str]]] = {}
        self._card_shown: dict[str, tuple] = {}  # what the A and B cards show (see _show_cards)
        self._compared: tuple | None = None
        # Error bars from the background worker: None while they compute (shown as "…").
        self.intervals: CompareIntervals | None = None
        self._interval_cache: dict[tuple, CompareIntervals] = {}
        # The last intervals shown, by (A, B, τ): their univariate parts hold at every r.
        self._univariate: tuple[tuple | None, CompareIntervals] | None = None
        # What the verdict rests on (lens_tui.evidence); None while the evidence computes.
        self.basis: VerdictBasis | None = None
        self._evidence_running: tuple | None = None
        self._basis_of: tuple | None = None  # (evidence, comparison) the basis was made for
        # The layer table starts in layer order; o / O / a header click sort it.
        self.sorting = TableSort(
            tuple(key for key, _ in TABLE_COLUMNS),
            "layer",
            largest_first=frozenset(column.id for column in COLUMNS),
        )
        self.row_layers: list[int] = []  # the layer shown in each row of the table, top down
        self._verdict_held = False  # True while show_selection repaints (see there)

    def compose(self) -> ComposeResult:
        with Horizontal(id="cards"):
            yield MetricCard(id="card-a", classes="card-a")
            yield MetricCard(id="card-b", classes="card-b")
            yield MetricCard(id="card-ab")
        yield WrappedText(id="verdict")
        yield SparkPanel(
            [
                SparkSpec(column.id, column.header, column.key, SIDE_COLORS[column.side])
                for column in COLUMNS
            ],
            id="sparks",
        )
        with Container(id="layer-detail"):
            yield ValueCachedTable(
                id="layer-table", cursor_type="row", zebra_stripes=True, fixed_columns=1
            )
            with Vertical(id="plot-box"):
                yield ItemLine(id="layer-ci")
                yield Static(id="plot-legend")
                yield ExpertPlot(id="expert-plot")

    def on_mount(self) -> None:
        # Keypresses update these many times a second: look them up once.
        self._cards = {
            side: self.query_one(f"#card-{side}", MetricCard) for side in ("a", "b", "ab")
        }
        self._verdict = self.query_one("#verdict", WrappedText)
        self._sparks = self.query_one(SparkPanel)
        self._table = self.query_one("#layer-table", ValueCachedTable)
        self._plot = self.query_one(ExpertPlot)
        self._shown_cells: list[list[str]] = []  # by layer
        self._shown_rows: list[list[str]] = []  # by row of the table
        self._plotted: tuple | None = None
        self._sparks.border_title = "per layer (highlight: selected layer)"
        for key, header in TABLE_COLUMNS:
            self._table.add_column(self.sorting.label(key, header), key=key)
        self._layer_ci = self.query_one("#layer-ci", ItemLine)
        self._legend = self.query_one("#plot-legend", Static)
        self._legend_text = ""
        self._verdict_shown: Text | None = None
        self._verdict_changed_at = 0.0
        self._verdict_fit: Timer | None = None  # the pending fit of its height (see _set_verdict)

    # ------------------------------------------------------------------ showing

    def depends_on(self, selection: Selection) -> object:
        s = selection
        return (s.profiles, s.labels, s.a, s.b, s.r, s.tau, s.layer, s.evaluations)

    def show_selection(self, selection: Selection) -> None:
        """Compare A and B at (r, τ); a change of layer alone only moves the highlight and plot."""
        if not selection.profiles:
            self._compared = None
            self.show_message(NO_BUNDLES)
            return
        s = selection
        compared = (s.profile_a, s.profile_b, s.label_a, s.label_b, s.r, s.tau)
        if compared == self._compared and self.comparison is not None:
            self.show_layer(s.layer)
            self._start_evidence(s)
            return
        self._compared = compared
        try:
            result = compare(s.profile_a, s.profile_b, s.r, s.tau)
        except LensError as exc:
            self.show_message(str(exc))
            return
        self.intervals = None
        self.basis = None
        # The cards, the cached intervals and the known evidence each ask for the
        # verdict; it is an engine call, so it is worked out once, after all three.
        self._verdict_held = True
        try:
            self.show(result, s.label_a, s.label_b, s.layer)
            self._start_intervals(s)
            self._start_evidence(s)
        finally:
            self._verdict_held = False
        self._show_verdict()

    def show_message(self, message: str) -> None:
        """Nothing to compare (no bundles, or an error): say so and blank the numbers."""
        self.comparison = None
        self.intervals = None
        self._series = {}
        self._card_shown.clear()
        for card in self._cards.values():
            card.show("", [])
            card.set_intervals({})
        self._set_verdict(Text(message, style="bold yellow"))
        self._sparks.set_values({}, None)
        self._table.clear()
        self._shown_cells = []
        self._shown_rows = []
        self.row_layers = []
        self._layer_ci.clear()
        self._legend.display = False
        self._plotted = None
        self._plot.clear_plot()

    def show(self, comparison: Comparison, label_a: str, label_b: str, layer: int) -> None:
        """Show every figure of ``comparison`` (the engine's result for the selection)."""
        self.comparison = comparison
        self._read_columns(comparison)
        self._show_cards(comparison, label_a, label_b)
        self._show_table(comparison.num_layers)
        self.show_layer(layer)

    def _read_columns(self, comparison: Comparison) -> None:
        """Every column's values and table cells; kept for a column whose array is unchanged.

        A new r changes the bivariate columns only: the 8 univariate ones (the
        profiles' own arrays for this τ) are not read and formatted again.
        """
        for column in COLUMNS:
            source = column.source(comparison)
            known = self._columns.get(column.id)
            if source is None or known is None or known[0] is not source:
                series = column.series(comparison)
                cells = [fmt(value, column.key) for value in series]
                self._columns[column.id] = (source, series, cells)
        self._series = {column.id: self._columns[column.id][1] for column in COLUMNS}

    def _show_cards(self, comparison: Comparison, label_a: str, label_b: str) -> None:
        sides: tuple[tuple[Side, str, Profile], ...] = (
            ("a", label_a, comparison.a),
            ("b", label_b, comparison.b),
        )
        for side, label, profile in sides:
            shown = (label, profile, comparison.tau)
            if self._card_shown.get(side) == shown:
                continue  # a new r: nothing on the A and B cards depends on it
            self._card_shown[side] = shown
            means = comparison.univariate_mean(side)
            self._cards[side].show(
                f"{side.upper()} {label}",
                [(CARD_LABELS[k], fmt(means[k], k)) for k in m.UNIVARIATE_KEYS],
                _bundle_caption(profile),
            )
        mean = comparison.mean
        self._cards["ab"].show(
            f"A vs B · r={comparison.r}",
            [(BIVARIATE_LABELS[k], fmt(mean[k], k)) for k in m.BIVARIATE_KEYS],
            "means over layers",
        )
        self._show_verdict()

    def _show_verdict(self) -> None:
        """The verdict; with the permutation test once the worker has it, "…" until then."""
        comparison = self.comparison
        if comparison is None or self._verdict_held:
            return
        basis = self.basis
        safe = is_safe(comparison, basis)
        intervals = self.intervals
        difference = None if intervals is None else intervals.difference
        verdict_text = Text("verdict: ", style="bold")
        verdict_text.append(
            verdict(comparison, difference, basis), style="bold green" if safe else "bold yellow"
        )
        if basis is None:
            verdict_text.append(f" · predictor validation {PENDING}", style="dim")
        if intervals is None:
            verdict_text.append(f" · resampling test {PENDING}", style="dim")
        else:
            verdict_text.append(f" · {ci.caption(intervals)}", style="dim")
        self._set_verdict(verdict_text)

    def _set_verdict(self, text: Text) -> None:
        if text == self._verdict_shown:  # asked again on a new r, by each worker's result
            return
        self._verdict_shown = text
        # The verdict grows at once but shrinks only once it has rested for
        # VERDICT_FIT_S: following each text's height exactly cost two whole-screen
        # layout passes (~50 ms at 160×48) whenever the resampling test landed
        # between keys, and another when the next key's interim text ("…") grew it
        # back. Once the keys rest, the verdict is fitted exactly: no blank line stays.
        self._verdict_changed_at = time.monotonic()
        self._keep_in_view(self._verdict.show(text, grow_only=True))
        if self._verdict_fit is None:
            self._verdict_fit = self.set_timer(VERDICT_FIT_S, self._fit_verdict)

    @property
    def verdict_fitting(self) -> bool:
        """Whether the verdict's height waits to be fitted (its text has not rested yet)."""
        return self._verdict_fit is not None

    def _fit_verdict(self) -> None:
        """Fit the verdict's height to its text, once it has not changed for VERDICT_FIT_S."""
        rested = time.monotonic() - self._verdict_changed_at
        if rested < VERDICT_FIT_S:
            self._verdict_fit = self.set_timer(VERDICT_FIT_S - rested, self._fit_verdict)
            return
        self._verdict_fit = None
        if self._verdict_shown is not None:
            self._keep_in_view(self._verdict.show(self._verdict_shown))

    def _keep_in_view(self, gained: int) -> None:
        """After the verdict gains (or loses) lines, keep what is below it where it was.

        With the view scrolled down (``l``: the layer table and chart), a
        taller or shorter verdict would move them under the reader's eyes.
        """
        if gained and self.scroll_y > 0:
            target = self.scroll_y + gained
            self.call_after_refresh(lambda: self.scroll_to(y=target, animate=False))

    def _show_table(self, num_layers: int) -> None:
        """Fill the per-layer table in the sort order (layer order unless sorted by a column)."""
        table = self._table
        cells = [self._cells(layer) for layer in range(num_layers)]
        column = self.sorting.column
        keys = range(num_layers) if column == "layer" else self._series[column]
        self.row_layers = [int(layer) for layer in self.sorting.order(list(keys))]
        rows = [cells[layer] for layer in self.row_layers]
        if len(rows) != len(self._shown_rows):
            table.clear()
            for index, row in enumerate(rows):
                table.add_row(*(Text(c, justify="right") for c in row), key=str(index))
        else:
            # Same shape: update only what changed, in place (a new r re-sorts only the
            # rows whose place changed), so unchanged cells are not redrawn.
            table.update_cells_at(
                (Coordinate(index, col), Text(cell, justify="right"))
                for index, (row, shown) in enumerate(zip(rows, self._shown_rows))
                for col, (cell, old) in enumerate(zip(row, shown))
                if cell != old
            )
        self._shown_cells = cells
        self._shown_rows = rows

    def resort(self) -> None:
        """Re-order the table for the new sort; the selected layer stays selected."""
        self._table.set_column_labels(
            {key: self.sorting.label(key, header) for key, header in TABLE_COLUMNS}
        )
        if self.comparison is None:
            return
        self._show_table(self.comparison.num_layers)
        self._move_cursor_to(self.selected_layer)

    def _move_cursor_to(self, layer: int) -> None:
        """Put the table's cursor on ``layer``'s row (wherever the sort has put it)."""
        if layer not in self.row_layers:
            return
        row = self.row_layers.index(layer)
        if self._table.cursor_row != row:
            self._table.move_cursor(row=row, scroll=True)

    def _cells(self, layer: int) -> list[str]:
        return [str(layer)] + [self._columns[c.id][2][layer] for c in COLUMNS]

    def _layer_intervals(self, layer: int) -> list[str]:
        """Each column's interval text for ``layer``: ``[lo, hi]``, or "…" while computing."""
        intervals, univariate = self.intervals, self._univariate_intervals()
        sources = {
            "": None if intervals is None else intervals.ci.bivariate,
            "a": None if univariate is None else univariate.ci.univariate_a,
            "b": None if univariate is None else univariate.ci.univariate_b,
        }
        texts = []
        for column in COLUMNS:
            source = sources[column.side]
            if source is None:
                texts.append(PENDING)
                continue
            bars = source.layers.get(column.key)
            texts.append(ci.interval_text(None if bars is None else bars[layer], column.key))
        return texts

    def _show_layer_intervals(self) -> None:
        """The selected layer's row of the table, with an interval beside every value.

        A line of its own under the table (beside the plot) rather than wider
        table cells: intervals in the cells would push all but two columns out
        of view at every width.
        """
        layer = self.selected_layer
        if self.comparison is None or not 0 <= layer < len(self._shown_cells):
            self._layer_ci.clear()
            return
        values = self._shown_cells[layer][1:]
        self._layer_ci.show(
            [(f"layer {layer}: ", "bold")],
            [
                [(f"{column.header} ", SIDE_COLORS[column.side]), (f"{value} {text}", "")]
                for column, value, text in zip(COLUMNS, values, self._layer_intervals(layer))
            ],
        )

    # ------------------------------------------------------------------ intervals

    def _start_intervals(self, selection: Selection) -> None:
        """Show "…" and compute the intervals in a worker, or take them from the cache."""
        s = selection
        key = (s.profile_a, s.profile_b, s.r, s.tau)
        cached = self._interval_cache.get(key)
        if cached is not None:
            self._show_intervals(cached)
            return
        self._paint_intervals()

        def done(result: CompareIntervals | None) -> None:
            if result is None:  # cancelled: a newer job is on its way
                return
            if len(self._interval_cache) >= 32:  # a small memory of recent selections
                self._interval_cache.pop(next(iter(self._interval_cache)))
            self._interval_cache[key] = result
            self._show_intervals(result)

        self.run_on_selection(s, ci.compute, done, part=ci.interval_part)

    def _show_intervals(self, result: CompareIntervals) -> None:
        self.intervals = result
        self._univariate = (self._univariate_key(), result)
        self._paint_intervals()

    def _univariate_key(self) -> tuple | None:
        """What the univariate intervals depend on: A, B and τ (not r)."""
        compared = self._compared
        return None if compared is None else (compared[0], compared[1], compared[5])

    def _univariate_intervals(self) -> CompareIntervals | None:
        """The intervals whose univariate parts hold for the selection, even while r's compute.

        The univariate metrics do not depend on r, and the bootstrap draws the
        same replicates at every r (one seed, the same resampling units), so
        another r's intervals of the same A, B and τ are this r's, number for
        number: the A and B cards keep them instead of going back to "…" (and
        are not redrawn) on every new r.
        """
        if self.intervals is not None:
            return self.intervals
        kept = self._univariate
        if kept is not None and kept[0] == self._univariate_key():
            return kept[1]
        return None

    def _paint_intervals(self) -> None:
        """Cards, verdict and the selected row from ``self.intervals`` ("…" when unknown)."""
        intervals = self.intervals
        comparison = self.comparison
        if comparison is None:
            return
        univariate = self._univariate_intervals()
        for side in ("a", "b"):
            texts = {CARD_LABELS[k]: PENDING for k in m.UNIVARIATE_KEYS}
            if univariate is not None:
                source = univariate.ci.univariate_a if side == "a" else univariate.ci.univariate_b
                texts = {
                    CARD_LABELS[k]: ci.interval_text(source.mean.get(k), k)
                    for k in m.UNIVARIATE_KEYS
                }
            self._cards[side].set_intervals(texts)
        texts = {BIVARIATE_LABELS[k]: PENDING for k in m.BIVARIATE_KEYS}
        if intervals is not None:
            texts = {
                BIVARIATE_LABELS[k]: ci.interval_text(intervals.ci.bivariate.mean.get(k), k)
                for k in m.BIVARIATE_KEYS
            }
        self._cards["ab"].set_intervals(texts)
        self._show_verdict()
        self._show_layer_intervals()

    # ------------------------------------------------------------------ evidence

    def _start_evidence(self, selection: Selection) -> None:
        """The verdict's basis: at once when the evidence is known, else from a worker.

        The rank tests behind it depend only on the loaded files, so a new A, B or
        r does not restart a running job; its result is applied to whatever is
        compared when it arrives.
        """
        s = selection
        known = ev.cached(s.evaluations, s.profiles)
        if known is not None:
            self._evidence_running = None
            self._apply_evidence(known)
            return
        if self.basis is not None:  # new files loaded: the old basis no longer holds
            self.basis = None
            self._show_verdict()
        key = (s.evaluations, s.profiles)
        if self._evidence_running == key:
            return
        self._evidence_running = key

        def done(evidence: ev.SessionEvidence) -> None:
            self._evidence_running = None
            self._apply_evidence(evidence)

        self.run_on_selection(
            s,
            lambda sel: ev.session_evidence(sel.evaluations, sel.profiles),
            done,
            part=lambda sel: (sel.evaluations, sel.profiles),
            lane="-evidence",
        )

    def _apply_evidence(self, evidence: ev.SessionEvidence) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        if self.basis is not None and self._basis_of == (evidence, comparison):
            return  # a new layer alone: the basis stands, no repaint
        self._basis_of = (evidence, comparison)
        self.basis = verdict_basis(evidence.choice, comparison.a, comparison.b, comparison.r)
        self._show_verdict()

    def show_layer(self, layer: int) -> None:
        """Highlight ``layer`` in the sparklines and table and plot its expert distributions."""
        if self.comparison is None:
            return
        self.selected_layer = layer
        self._show_layer_intervals()
        self._sparks.set_values(self._series, layer)
        self._move_cursor_to(layer)
        comparison = self.comparison
        self._legend.display = True
        plotted = (comparison.a, comparison.b, layer, comparison.r)
        if plotted != self._plotted:  # τ alone does not change the plot: skip the replot
            self._plotted = plotted
            dist = layer_distribution(comparison.a, comparison.b, layer, comparison.r)
            legend = ExpertPlot.legend(len(dist.prob_a))
            if legend.plain != self._legend_text:  # one fixed line: no layout pass per key
                self._legend_text = legend.plain
                self._legend.update(legend, layout=False)
            self._plot.show(dist, key=plotted)  # well under a millisecond: in this frame

    # ------------------------------------------------------------------ events

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.cursor_row != event.data_table.cursor_row:
            return  # stale: the table was rebuilt or moved again since this was posted
        if self.comparison is None or not 0 <= event.cursor_row < len(self.row_layers):
            return
        layer = self.row_layers[event.cursor_row]
        if layer != self.selected_layer:
            self.post_message(SelectionEdited(layer=layer))

    def action_toggle_layers(self) -> None:
        self._table.focus(scroll_visible=False)
        if self.scroll_y > 0:
            self.scroll_home(animate=False)
        else:
            self.scroll_to_widget(self.query_one("#layer-detail"), top=True, animate=False)


def _bundle_caption(profile: Profile) -> str:
    return f"{profile.bundle.num_samples:,} seq {compact_count(profile.tokens)} tok"


def compact_count(count: int) -> str:
    """4012 -> 4.0k, 2_500_000 -> 2.5M: short counts for captions."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if count >= size:
            return f"{count / size:.1f}{suffix}"
    return str(count)
