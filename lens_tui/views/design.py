"""Design view: choose the calibration set for the domains you care about (``lens design``).

Tick candidates (what you could calibrate with) and targets (what the pruned
model must serve); ``core.design.design`` finds the mix that keeps the most
relative retained mass of the worst-served target at the app's budget r,
plus a concrete greedy list of sequences, and scores every single candidate
and the uniform mix under the same objective. It runs in a worker (seconds
on a dozen bundles). ``w`` writes the selection's mask and, when every
candidate's data file is on disk, the calibration JSONL, through
``core.design.write_calibration`` and ``core.formats.mask.write_mask``
(atomic; an output that is one of the inputs is refused). Writing is off in
a served, read-only app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, SelectionList, Static

from core.design import Design, design, write_calibration
from core.engine import Profile
from core.errors import LensError
from core.formats.mask import write_mask
from core.textdata import recorded_data_file
from lens_tui.selection import NO_BUNDLES, Selection
from lens_tui.views.base import SelectionView
from lens_tui.widgets.sorting import SORT_BINDINGS, SortableView, TableSort, text_keys
from lens_tui.widgets.table import ValueCachedTable


def pct(value: float | None) -> str:
    """A share as ``lens design`` prints it."""
    return "—" if value is None or value != value else f"{value:.1%}"


@dataclass(frozen=True)
class DesignRequest:
    """What one design is of: the ticked bundles (indexes into the selection's profiles) and N."""

    candidates: tuple[int, ...]
    targets: tuple[int, ...]
    sequences: int | None  # None: core.design's default (the convergence count)


def run_design(selection: Selection, request: DesignRequest) -> Design:
    """The worker's job: ``core.design.design`` for the ticked bundles at the selection's r."""
    profiles = selection.profiles
    return design(
        [profiles[i] for i in request.candidates],
        [profiles[i] for i in request.targets],
        selection.r,
        request.sequences,
    )


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


class DesignView(SelectionView, SortableView, Vertical):
    """Tick candidates and targets; see the mix, the objective against each baseline; write it."""

    #: What the help screen says of this view (Markdown, after "**Design** — ").
    SUMMARY = """\
    the calibration set for your domains (`lens design`): tick
    candidates and targets; the mix of candidates (for N sequences, default
    the convergence count) that keeps the most relative retained mass of the
    worst-served target at r, a greedy sequence list, the same objective for
    every single candidate and the uniform mix; `w` writes the mask and the
    calibration file."""

    BINDINGS = [
        Binding("w", "write", "Write files", tooltip="Write the mask and calibration file"),
        Binding("escape", "leave_field", "Leave field", show=False),
        *SORT_BINDINGS,
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.result: Design | None = None
        self.request: DesignRequest | None = None
        self._known: tuple[Path, ...] = ()
        self._candidates: set[Path] = set()
        self._targets: set[Path] = set()
        self._sequences: int | None = None
        # The result table: best worst-served target first until o / O / a header click.
        self.sorting = TableSort(("set", "worst"), "worst", True, frozenset({"worst"}))
        self._rows: list[tuple[str, dict, str]] = []  # (set, its scores, style)
        self._target_names: list[str] = []  # the result table's per-target columns

    def compose(self) -> ComposeResult:
        with Horizontal(id="design-pickers"):
            yield SelectionList[int](id="design-candidates")
            yield SelectionList[int](id="design-targets")
        with Horizontal(id="design-settings"):
            yield Label("N")
            yield Input(id="design-sequences", placeholder="auto", type="integer")
            yield Label("calib")
            yield Input(id="design-out", value="calib.jsonl")
            yield Label("mask")
            yield Input(id="design-mask-out", value="calib-mask.json")
        yield Static(id="design-status")
        yield ValueCachedTable(id="design-table", cursor_type="none", zebra_stripes=True)
        yield Static(id="design-mix")
        yield Static(id="design-written")

    def on_mount(self) -> None:
        self.query_one("#design-candidates").border_title = "candidates (space)"
        self.query_one("#design-targets").border_title = "targets (space)"

    # ------------------------------------------------------------------ showing

    def depends_on(self, selection: Selection) -> object:
        return (selection.profiles, selection.labels, selection.r, selection.name_filter)

    def show_selection(self, selection: Selection) -> None:
        if not selection.profiles:
            self.result = None
            self._status(Text(NO_BUNDLES, style="bold yellow"))
            return
        paths = tuple(p.bundle.path for p in selection.profiles)
        new = [p for p in paths if p not in self._known]
        self._candidates |= set(new)  # a new bundle is ticked on both sides
        self._targets |= set(new)
        self._known = paths
        self._fill_pickers(selection)
        self._start(selection)

    def _fill_pickers(self, selection: Selection) -> None:
        for picker_id, ticked in (
            ("#design-candidates", self._candidates),
            ("#design-targets", self._targets),
        ):
            picker = self.query_one(picker_id, SelectionList)
            shown = selection.shown  # the `/` filter narrows both lists
            with picker.prevent(SelectionList.SelectedChanged):
                picker.clear_options()
                picker.add_options(
                    [
                        (selection.labels[i], i, selection.profiles[i].bundle.path in ticked)
                        for i in shown
                    ]
                )
                if picker.highlighted is None and shown:
                    picker.highlighted = 0
            name = "candidates" if picker_id == "#design-candidates" else "targets"
            counted = f" {len(shown)}/{len(selection.profiles)}" if selection.name_filter else ""
            picker.border_title = f"{name}{counted} (space)"

    def _request(self, selection: Selection) -> DesignRequest:
        """The ticked bundles the filter shows: what the lists show is what the design uses."""
        paths = {i: selection.profiles[i].bundle.path for i in selection.shown}
        return DesignRequest(
            tuple(i for i, p in paths.items() if p in self._candidates),
            tuple(i for i, p in paths.items() if p in self._targets),
            self._sequences,
        )

    def _start(self, selection: Selection) -> None:
        """Compute the design for the ticked bundles in a worker; "…" until it is back."""
        request = self._request(selection)
        self.request = request
        if not request.candidates or not request.targets:
            self.result = None
            self._status(Text("tick at least one candidate and one target (space)", "yellow"))
            self._clear_result()
            return
        self._status(
            Text(
                f"designing: {len(request.candidates)} candidates, {len(request.targets)} "
                f"targets, r = {selection.r} …",
                style="dim",
            )
        )

        def work(s: Selection) -> Design | LensError:
            try:
                return run_design(s, request)
            except LensError as exc:  # e.g. bundles of different models: say so on screen
                return exc

        def part(s: Selection) -> object:
            return (self.depends_on(s), self.request)

        self.run_on_selection(selection, work, self._show_result, part)

    def _status(self, text: Text) -> None:
        self.query_one("#design-status", Static).update(text)

    def _clear_result(self) -> None:
        self.query_one("#design-table", DataTable).clear(columns=True)
        self.query_one("#design-mix", Static).update("")

    def _show_result(self, result: Design | LensError) -> None:
        if isinstance(result, LensError):
            self.result = None
            self._status(Text(str(result), style="bold yellow"))
            self._clear_result()
            return
        self.result = result
        doc = result.to_json()
        baselines = doc["baselines"]
        best_single = max(
            (v["value"] or 0.0 for k, v in baselines.items() if k != "uniform"), default=0.0
        )
        status = Text(
            f"worst-served target keeps {pct(doc['design']['value'])} of its attainable "
            f"top-{result.r} mass with the design, N = {result.sequences} "
            f"(best single candidate {pct(best_single)}, uniform mix "
            f"{pct(baselines['uniform']['value'])})",
            style="bold",
        )
        self._status(status)
        self._target_names = list(doc["design"]["per_target"])
        self._rows = [
            ("design (mix)", doc["design"], "bold"),
            ("selection", doc["selection"], "bold"),
        ]
        self._rows += [
            ("uniform mix" if name == "uniform" else name, score, "")
            for name, score in baselines.items()
        ]
        columns = ("set", "worst", *(f"t:{name}" for name in self._target_names))
        self.sorting = self.sorting.over(columns, "worst", frozenset(columns[1:]))
        self._fill_table()
        weights = doc["design"]["weights"]
        mix = Text("mix: ", style="bold")
        mix.append(
            ", ".join(
                f"{name} {w:.0%} ({round(w * result.sequences)})"
                for name, w in sorted(weights.items(), key=lambda kv: -kv[1])
                if w > 0
            )
        )
        chosen = doc["selection"]["example_ids"]
        mix.append(
            f"\nselection: {sum(map(len, chosen.values()))} sequences: "
            + ", ".join(f"{name} {len(ids)}" for name, ids in chosen.items() if ids)
        )
        self.query_one("#design-mix", Static).update(mix)

    def _fill_table(self) -> None:
        """The design, the selection and every baseline, one row each, in the sort order."""
        table = self.query_one("#design-table", DataTable)
        table.clear(columns=True)
        targets = self._target_names
        table.add_column(self.sorting.label("set", "set"), key="set")
        table.add_column(self.sorting.label("worst", "worst"), key="worst")
        for name in targets:
            table.add_column(self.sorting.label(f"t:{name}", name), key=f"t:{name}")
        column = self.sorting.column
        if column == "set":
            keys = text_keys([label for label, _, _ in self._rows])
        elif column == "worst":
            keys = [score["value"] for _, score, _ in self._rows]
        else:
            keys = [score["per_target"][column[2:]] for _, score, _ in self._rows]
        for i in self.sorting.order(keys):
            label, score, style = self._rows[int(i)]
            cells = [Text(label, style=style), Text(pct(score["value"]), style=style)]
            cells += [Text(pct(score["per_target"][t])) for t in targets]
            table.add_row(*cells, key=label)

    def resort(self) -> None:
        if self.result is not None:
            self._fill_table()

    # ------------------------------------------------------------------ events

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        selection = self.selection
        if selection is None or not selection.profiles:
            return
        chosen = {selection.profiles[i].bundle.path for i in event.selection_list.selected}
        shown = {selection.profiles[i].bundle.path for i in selection.shown}
        # The lists hold only what the filter shows: hidden bundles keep their ticks.
        if event.selection_list.id == "design-candidates":
            self._candidates = (self._candidates - shown) | chosen
        else:
            self._targets = (self._targets - shown) | chosen
        self._start(selection)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "design-sequences":
            return
        value = event.value.strip()
        sequences = int(value) if value else None
        if sequences is not None and sequences < 1:
            self.app.notify("N must be at least 1 (empty: the convergence count)", severity="error")
            return
        self._sequences = sequences
        if self.selection is not None and self.selection.profiles:
            self._start(self.selection)

    def action_leave_field(self) -> None:
        self.query_one("#design-candidates").focus()

    def action_write(self) -> None:
        """Write the selection's mask and, with every candidate's data on disk, the JSONL."""
        if self.app.read_only:  # type: ignore[attr-defined]
            self.app.notify("served read-only: the Design view does not write files")
            return
        result = self.result
        if result is None:
            self.app.notify("no design yet: tick candidates and targets first", severity="warning")
            return
        try:
            written = self.write(
                result,
                Path(self.query_one("#design-out", Input).value.strip() or "calib.jsonl"),
                Path(self.query_one("#design-mask-out", Input).value.strip() or "calib-mask.json"),
            )
        except LensError as exc:
            self.app.notify(str(exc), title="not written", severity="error", timeout=15)
            return
        self.query_one("#design-written", Static).update(Text("wrote " + written, style="green"))
        self.app.notify("wrote " + written, title="design")

    @staticmethod
    def write(result: Design, out: Path, mask_out: Path) -> str:
        """Write mask (and calibration file when the data is known); what was written, in words.

        Refuses outputs that are inputs (a bundle or a data file), like the CLI.
        """
        profiles: list[Profile] = [c.profile for c in result.candidates] + list(result.targets)
        data = [
            recorded_data_file(c.profile.bundle.metadata, c.profile.bundle.path)
            for c in result.candidates
        ]
        inputs = [p.bundle.path for p in profiles] + [d for d in data if d is not None]
        for target in (out, mask_out):
            if any(same_file(target, p) for p in inputs):
                raise LensError(f"{target}: is an input of this design; choose another output")
        if same_file(out, mask_out):
            raise LensError(f"{out}: the calibration file and the mask need different names")
        write_mask(mask_out, result.selection_mask())
        missing = [c.name for c, d in zip(result.candidates, data) if d is None]
        if missing:
            return (
                f"{mask_out} (no {out}: the data files of {', '.join(missing)} are not on disk; "
                "lens design --data writes it)"
            )
        fields = [c.profile.bundle.metadata.get("text_field") or "text" for c in result.candidates]
        if len(set(fields)) > 1:
            raise LensError("the candidates' data use different text fields; use lens design")
        count = write_calibration(out, result, [d for d in data if d is not None], fields[0])
        return f"{mask_out} and {out} ({count:,} sequences)"
