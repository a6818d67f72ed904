"""N-way view: mean JS, Jaccard@r and retained mass for every pair of the chosen bundles.

``core.matrix.matrix`` computes the k × k figures; this view shows which
bundles take part (a selection list mirroring the selection's ``ticked``
set; space asks the app to change it) and the three matrices one above the
other with heat-coloured cells.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, SelectionList, Static

from core.engine import Profile
from core.errors import LensError
from core.matrix import MATRIX_KEYS, Matrix, matrix
from lens_tui.bundle_reading import read_signature
from lens_tui.messages import SelectionEdited
from lens_tui.render import fmt
from lens_tui.selection import NO_BUNDLES, Selection
from lens_tui.views.base import SelectionView, cancelled
from lens_tui.widgets.sorting import SORT_BINDINGS, SortableView, TableSort
from lens_tui.widgets.table import ValueCachedTable
from lens_tui.widgets.ticklist import TickList

TITLES = {
    "js_divergence": "mean JS divergence (bits) · 0 = same routing",
    "jaccard": "mean Jaccard@{r} · 1 = the same experts kept",
    "retained_mass": "retained mass @{r} · column's mass kept by row's mask",
}
#: Whether a larger value means "more alike" (colours run from alike to different).
HIGHER_IS_ALIKE = {"js_divergence": False, "jaccard": True, "retained_mass": True}
#: Row labels are cut to this many characters of the name; the bundle list has them whole.
ROW_LABEL_CHARS = 12
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
    return "on " + hex_color(tuple(round(s + (e - s) * u) for s, e in zip(start, end)))


def hex_color(rgb: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def read_signatures(profiles: list[Profile]) -> dict[Profile, str]:
    """The worker's job: read each profile's signature; the failures, one line each."""
    failures: dict[Profile, str] = {}
    for profile in profiles:
        if cancelled():
            break
        failure = read_signature(profile)
        if failure is not None:
            failures[profile] = failure
    return failures


class MatrixView(SelectionView, SortableView, Horizontal):
    """Pick bundles on the left (space toggles); the three matrices of the ticked ones on the right."""

    #: What the help screen says of this view (Markdown, after "**Matrix** — ").
    SUMMARY = """\
    mean JS / Jaccard / retained mass for every pair of the ticked
    bundles, heat-coloured."""

    BINDINGS = [
        Binding("right,l", "scroll_tables(1)", "scroll →", show=False),
        Binding("left,h", "scroll_tables(-1)", "scroll ←", show=False),
        Binding("pagedown", "scroll_main(1)", "page down", show=False),
        Binding("pageup", "scroll_main(-1)", "page up", show=False),
        *SORT_BINDINGS,
    ]

    #: Keys the bundle list handles itself; help lists them with this view's.
    HELP_KEYS = [
        Binding("space", "", "Tick", tooltip="Tick or untick the highlighted bundle"),
        Binding("enter", "", "Tick", tooltip="Tick or untick the highlighted bundle"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.result: Matrix | None = None
        self._profiles: list[Profile] = []
        self._labels: list[str] = []
        self._r = 1
        self._same: set[int] = set()
        self._visible: list[int] = []
        self._ticked: frozenset[int] = frozenset()
        self._model = ""
        # Bundles whose values failed to read on first use, with the one-line reason.
        self._failed: dict[Profile, str] = {}
        # One order for the three matrices, each by its own values: the bundles' order
        # (by number) or one bundle's column (its key is the bundle's index), largest first.
        self.sorting = TableSort(("name",), "name")
        self._chosen: list[int] = []

    def compose(self) -> ComposeResult:
        yield TickList(id="matrix-bundles")
        with VerticalScroll(id="matrix-main", can_focus=False):
            yield Static(id="matrix-message")
            for key in MATRIX_KEYS:
                yield Static(id=f"title-{key}", classes="matrix-title")
                # The row labels stay put while the numbers scroll sideways.
                yield ValueCachedTable(
                    id=f"matrix-{key}",
                    cursor_type="none",
                    classes="matrix-table",
                    fixed_columns=1,
                )
            yield Static(id="matrix-legend")

    def on_mount(self) -> None:
        self.query_one("#matrix-bundles").border_title = "bundles (space)"

    def table(self, key: str) -> DataTable:
        return self.query_one(f"#matrix-{key}", DataTable)

    def depends_on(self, selection: Selection) -> object:
        s = selection
        model = s.model if s.profiles else None
        return (s.profiles, s.labels, s.r, s.ticked, model, s.name_filter)

    def show_selection(self, selection: Selection) -> None:
        """Offer the bundles the filter shows for ticking and show the matrices of the ticked ones."""
        picker = self.query_one("#matrix-bundles", SelectionList)
        labels = list(selection.labels)
        shown = selection.shown
        if (
            labels != self._labels
            or shown != self._visible
            or set(picker.selected) != selection.ticked & set(shown)
        ):
            with picker.prevent(SelectionList.SelectedChanged):
                picker.clear_options()
                # "#3 name": the list is the legend of the matrices' numbered columns.
                picker.add_options(
                    [(f"#{i + 1} {labels[i]}", i, i in selection.ticked) for i in shown]
                )
                if shown and picker.highlighted is None:
                    picker.highlighted = 0
        title = "bundles (space)"
        if selection.name_filter:
            title = f"bundles {len(shown)}/{len(labels)}"
        picker.border_title = title
        self._profiles, self._labels, self._r = list(selection.profiles), labels, selection.r
        self._visible = shown
        self._ticked = selection.ticked
        # Only the current model's bundles the filter shows are compared (m switches model).
        self._same = set(selection.of_model()) & set(shown) if selection.profiles else set()
        self._model = selection.model if len(selection.models) > 1 else ""
        if not selection.profiles:
            self.show_message(NO_BUNDLES)
            return
        self._redraw()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        # The list holds only the bundles the filter shows: the others keep their ticks.
        hidden = self._ticked - set(self._visible)
        self.post_message(SelectionEdited(ticked=hidden | set(event.selection_list.selected)))

    def _redraw(self) -> None:
        ticked = self.query_one("#matrix-bundles", SelectionList).selected
        chosen = sorted(i for i in ticked if i in self._same)
        if len(chosen) < 2:
            of = f" of {self._model}" if self._model else ""
            shown = " shown by the filter" if len(self._visible) < len(self._labels) else ""
            self.show_message(
                f"tick at least two bundles{of}{shown} (space) for the N-way comparison"
            )
            return
        profiles = [self._profiles[i] for i in chosen]
        failed = next((self._failed[p] for p in profiles if p in self._failed), None)
        if failed is not None:
            self.show_message(f"{failed} (untick it: space)")
            return
        unread = [p for p in profiles if not p.has_signature]
        if unread and self.selection is not None:
            # The app opens bundles by header only; their values are read on first use,
            # here: off the UI thread (seconds for a dozen frontier-scale bundles).
            self.show_message(f"reading {len(unread)} bundle(s) (checked on first use)…")
            self.run_on_selection(self.selection, lambda _: read_signatures(unread), self._read)
            return
        try:
            result = matrix(profiles, self._r)
        except LensError as exc:
            self.show_message(str(exc))
            return
        self.result = result
        others = len([i for i in ticked if i not in self._same])
        self._set_message(
            f"model {self._model}: {others} ticked bundle(s) of other models left out (m switches)"
            if others
            else ""
        )
        self._chosen = chosen
        self._sort_columns(chosen)
        for key in MATRIX_KEYS:
            self.query_one(f"#title-{key}", Static).update(
                Text(TITLES[key].format(r=self._r), style="bold")
            )
        self._fill_tables()
        legend = Text("colour: ", style="dim")
        legend.append(" alike ", style="on " + hex_color(ALIKE_RGB))
        legend.append(" → ", style="dim")
        legend.append(" different ", style="on " + hex_color(DIFFERENT_RGB))
        legend.append("  (per matrix; ←/→ scroll)", style="dim")
        self.query_one("#matrix-legend", Static).update(legend)

    def _read(self, failures: dict[Profile, str]) -> None:
        """The worker has read the signatures: report failures (once each) and redraw."""
        for profile, line in failures.items():
            if profile not in self._failed:
                self._failed[profile] = line
                self.app.report_unreadable_bundle(line)  # type: ignore[attr-defined]
        self._redraw()

    def _sort_columns(self, chosen: list[int]) -> None:
        """The sortable columns for these bundles; a sort by a bundle no longer shown is dropped."""
        columns = ("name", *(str(i) for i in chosen))
        self.sorting = self.sorting.over(columns, "name", frozenset(columns[1:]))

    def _fill_tables(self) -> None:
        result = self.result
        if result is None:
            return
        doc = result.to_json()
        for key in MATRIX_KEYS:
            self._fill(self.table(key), key, doc[key])

    def resort(self) -> None:
        self._fill_tables()

    def action_scroll_tables(self, direction: int) -> None:
        """←/→ scroll every matrix sideways together (the focus stays on the bundle list)."""
        for key in MATRIX_KEYS:
            table = self.table(key)
            table.scroll_to(x=table.scroll_x + direction * 8, animate=False)

    def action_scroll_main(self, direction: int) -> None:
        main = self.query_one("#matrix-main", VerticalScroll)
        main.scroll_to(y=main.scroll_y + direction * max(1, main.size.height - 2), animate=False)

    def row_order(self, values: list[list]) -> list[int]:
        """Positions (in the ticked bundles) of a matrix's rows, top down, in the sort order."""
        column = self.sorting.column
        if column == "name":
            keys = [float(i) for i in self._chosen]
        else:
            position = self._chosen.index(int(column))
            keys = [row[position] for row in values]
        return [int(i) for i in self.sorting.order(keys)]

    def _fill(self, table: DataTable, key: str, values: list[list]) -> None:
        """One matrix: a row per ticked bundle in the sort order, its name in the fixed column."""
        chosen = self._chosen
        table.clear(columns=True)
        off = [
            v for i, row in enumerate(values) for j, v in enumerate(row) if i != j and v is not None
        ]
        lo, hi = (min(off), max(off)) if off else (0.0, 0.0)
        table.add_column(self.sorting.label("name", "bundle"), key="name")
        for index in chosen:
            table.add_column(self.sorting.label(str(index), f"#{index + 1}"), key=str(index))
        for i in self.row_order(values):
            label = self._labels[chosen[i]]
            name = label if len(label) <= ROW_LABEL_CHARS else label[: ROW_LABEL_CHARS - 1] + "…"
            cells: list[Text] = [Text(f"#{chosen[i] + 1} {name}", no_wrap=True)]
            for j, value in enumerate(values[i]):
                style = "dim" if i == j else heat(value, lo, hi, HIGHER_IS_ALIKE[key])
                cells.append(Text(fmt(value, key), style=style, justify="right"))
            table.add_row(*cells, key=str(chosen[i]))

    def show_message(self, message: str) -> None:
        self.result = None
        self._chosen = []
        self._set_message(message)
        for key in MATRIX_KEYS:
            self.query_one(f"#title-{key}", Static).update("")
            self.table(key).clear(columns=True)
        self.query_one("#matrix-legend", Static).update("")

    def _set_message(self, message: str) -> None:
        box = self.query_one("#matrix-message", Static)
        box.update(Text(message, style="bold yellow"))
        box.display = bool(message)
