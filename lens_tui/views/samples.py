"""Samples view: dataset A's calibration sequences one by one (``lens samples`` in the app).

``core.samples.analyse`` computes the table (JS from the dataset signature,
exact leave-one-out mask changes, near-duplicate groups) in a worker, since
it reads every sample; the selected sample's signature against the
dataset's, for the selected layer, comes from ``core.samples.sample_layer``.
Texts come from the user's data file through ``core.textdata.TextSource``,
read-only and lazily (also in a worker: a first look-up deep into a large
JSONL scans up to it): the file the bundle records, when it is still on
disk, or one typed into the data field (not in a served, read-only app,
where visitors must not read files by path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from core.engine import Profile
from core.errors import LensError
from core.samples import SORT_COLUMNS, SampleReport, analyse, sample_layer
from core.textdata import TextSource, first_line, recorded_data_file
from lens_tui.render import fmt
from lens_tui.selection import NO_BUNDLES, Selection
from lens_tui.views.base import SelectionView
from lens_tui.widgets.colors import A_HEX
from lens_tui.widgets.sample_plot import SamplePlot
from lens_tui.widgets.sorting import SORT_BINDINGS, SortableView, TableSort
from lens_tui.widgets.table import ValueCachedTable

#: Table columns: (sort column of core.samples, header).
HEADERS = (
    ("index", "index"),
    ("example_id", "example id"),
    ("tokens", "tokens"),
    ("js_mean", "JS mean"),
    ("js_max", "JS max"),
    ("influence", "mask Δ"),
    ("duplicate_group", "dup"),
)
assert tuple(h for h, _ in HEADERS[:-1]) == SORT_COLUMNS


def sample_cells(report: SampleReport, index: int) -> list[str]:
    """One row of the table, formatted as ``lens samples`` prints it."""
    js_mean, js_max = report.js_mean[index], report.js_max[index]
    changes, group = int(report.mask_changes[index]), int(report.groups[index])
    return [
        str(index),
        str(int(report.bundle.example_ids[index])),
        f"{int(report.tokens[index]):,}",
        fmt(float(js_mean) if np.isfinite(js_mean) else None),
        fmt(float(js_max) if np.isfinite(js_max) else None),
        "—" if changes < 0 else str(changes),
        "" if group < 0 else str(group),
    ]


def _report_part(selection: Selection) -> object:
    """What the table depends on: dataset A and r (not B, τ or the layer)."""
    return (selection.profile_a, selection.r) if selection.profiles else None


class SamplesView(SelectionView, SortableView, Vertical):
    """Dataset A's samples: a sortable table, the selected one's routing plot and text."""

    #: What the help screen says of this view (Markdown, after "**Samples** — ").
    SUMMARY = """\
    dataset A's calibration sequences one by one (`lens samples`):
    tokens, JS from the dataset's signature (mean and worst layer), how many
    experts the top-r mask changes when the sample is left out, near-duplicate
    groups; the selected sample's routing against the dataset's for the
    selected layer, and its text when the data file is known."""

    BINDINGS = [
        *SORT_BINDINGS,
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: SampleReport | None = None
        # Identifiers ascending, figures largest first (core.samples' defaults).
        self.sorting = TableSort(
            SORT_COLUMNS,
            "js_mean",
            descending=True,
            largest_first=frozenset(SORT_COLUMNS) - {"index", "example_id"},
        )
        self.order: np.ndarray = np.zeros(0, dtype=np.int64)
        self.selected_sample: int | None = None
        self.data_files: dict[Path, Path] = {}  # bundle path -> data file typed by the user
        self.text_source: TextSource | None = None
        self._reports: dict[tuple, SampleReport] = {}
        self._profile: Profile | None = None
        self._layer = 0

    def compose(self) -> ComposeResult:
        yield Static(id="samples-status")
        with Horizontal(id="samples-main"):
            yield ValueCachedTable(
                id="samples-table", cursor_type="row", zebra_stripes=True, fixed_columns=1
            )
            with Vertical(id="samples-side"):
                yield SamplePlot(id="sample-plot")
                yield Static(id="sample-text")
                yield Input(id="samples-data", placeholder="data file for the texts (enter)")

    def on_mount(self) -> None:
        table = self.query_one("#samples-table", DataTable)
        for key, header in HEADERS:
            table.add_column(self.sorting.label(key, header), key=key)
        if self.app.read_only:  # type: ignore[attr-defined]
            field = self.query_one("#samples-data", Input)
            field.disabled = True
            field.placeholder = "served read-only: texts only from the bundle's own data file"

    # ------------------------------------------------------------------ showing

    def depends_on(self, selection: Selection) -> object:
        if not selection.profiles:
            return None
        return (selection.profile_a, selection.label_a, selection.r, selection.layer)

    def show_selection(self, selection: Selection) -> None:
        if not selection.profiles:
            self.show_message(NO_BUNDLES)
            return
        s = selection
        self._layer = s.layer
        if s.profile_a is not self._profile:
            self._profile = s.profile_a
            self._open_text_source(s.profile_a)
        key = (s.profile_a, s.r)
        report = self._reports.get(key)
        if report is not None:
            if report is not self.report:
                self._show_report(report, s.label_a)
            else:
                self._show_sample()
            return
        self.report = None
        self._status(Text(f"analysing {s.label_a}'s samples at r = {s.r} …", style="dim"))

        def done(result: SampleReport) -> None:
            self._reports[key] = result
            self._show_report(result, s.label_a)

        self.run_on_selection(s, lambda s: analyse(s.profile_a.bundle, s.r), done, _report_part)

    def show_message(self, message: str) -> None:
        self.report = None
        self._status(Text(message, style="bold yellow"))
        self.query_one("#samples-table", DataTable).clear()
        self.query_one(SamplePlot).clear_plot()
        self.query_one("#sample-text", Static).update("")

    def _status(self, text: Text) -> None:
        self.query_one("#samples-status", Static).update(text)

    def _show_report(self, report: SampleReport, label: str) -> None:
        self.report = report
        moving = int((report.mask_changes > 0).sum())
        groups = int(report.groups.max()) + 1 if (report.groups >= 0).any() else 0
        status = Text()
        status.append(f"A {label}", style=f"bold {A_HEX}")
        status.append(
            f"  {report.bundle.num_samples:,} samples · {moving:,} change the top-{report.r} "
            f"mask when left out · {groups:,} near-duplicate groups (JS ≤ {report.dup_js:g})"
        )
        self._status(status)
        self._fill_table()

    def _fill_table(self) -> None:
        report = self.report
        if report is None:
            return
        table = self.query_one("#samples-table", DataTable)
        keep = self.selected_sample
        self.order = report.order(self.sorting.column, self.sorting.descending)
        table.clear()
        table.add_rows(
            [[Text(c, justify="right") for c in sample_cells(report, i)] for i in self.order]
        )
        row = 0
        if keep is not None and keep < len(self.order):
            row = int(np.flatnonzero(self.order == keep)[0])
        table.move_cursor(row=row, scroll=True)
        self.selected_sample = int(self.order[row]) if len(self.order) else None
        self._show_sample()

    def _show_sample(self) -> None:
        """Plot the selected sample against the dataset (selected layer) and fetch its text."""
        report, index = self.report, self.selected_sample
        if report is None or index is None or self._profile is None:
            return
        try:
            dist = sample_layer(self._profile, index, self._layer, report.r)
        except LensError as exc:
            self.query_one(SamplePlot).clear_plot(str(exc))
        else:
            self.query_one(SamplePlot).show_sample(dist, index)
        self._show_text(int(report.bundle.example_ids[index]))

    # ------------------------------------------------------------------ texts

    def _open_text_source(self, profile: Profile) -> None:
        bundle = profile.bundle
        path = self.data_files.get(bundle.path) or recorded_data_file(bundle.metadata, bundle.path)
        self.text_source = None
        if path is not None:
            try:
                self.text_source = TextSource(path, bundle.metadata.get("text_field") or "text")
            except LensError:
                self.text_source = None

    def _show_text(self, example_id: int) -> None:
        box = self.query_one("#sample-text", Static)
        source = self.text_source
        if source is None:
            how = (
                "type its data file below (enter)"
                if not self.app.read_only  # type: ignore[attr-defined]
                else "run lens browse where the bundle's recorded data file is"
            )
            box.update(Text(f"text: the data file is not known here; {how}", style="dim"))
            return
        box.update(Text(f"example {example_id}: reading {source.path.name} …", style="dim"))

        def read() -> None:
            try:
                text = source.text(example_id)
                shown = "(not in the file)" if text is None else first_line(text, 400)
            except LensError as exc:
                shown = str(exc)
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(deliver, shown)

        def deliver(shown: str) -> None:
            report, index = self.report, self.selected_sample
            if report is None or index is None or source is not self.text_source:
                return
            if int(report.bundle.example_ids[index]) != example_id:
                return  # another sample was selected meanwhile
            text = Text(f"example {example_id} ({source.path.name}): ", style="bold")
            text.append(shown)
            box.update(text)

        self.run_worker(read, thread=True, exclusive=True, group="sample-text")

    # ------------------------------------------------------------------ events

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self.report is None or not 0 <= event.cursor_row < len(self.order):
            return
        index = int(self.order[event.cursor_row])
        if index != self.selected_sample:
            self.selected_sample = index
            self._show_sample()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._profile is None or self.app.read_only:  # type: ignore[attr-defined]
            return
        path = Path(event.value.strip()).expanduser()
        try:
            source = TextSource(path, self._profile.bundle.metadata.get("text_field") or "text")
        except LensError as exc:
            self.app.notify(str(exc), title="data file", severity="error")
            return
        self.data_files[self._profile.bundle.path] = path
        self.text_source = source
        self.query_one("#samples-table", DataTable).focus()
        self._show_sample()

    def sort_by(self, column: str, descending: bool | None = None) -> None:
        """Sort the table by ``column`` (one of ``core.samples.SORT_COLUMNS``)."""
        self.sorting.sort_by(column, descending)
        self.resort()

    def resort(self) -> None:
        table = self.query_one("#samples-table", ValueCachedTable)
        table.set_column_labels({key: self.sorting.label(key, header) for key, header in HEADERS})
        self._fill_table()

    def action_leave_field(self) -> None:
        self.query_one("#samples-table", DataTable).focus()
