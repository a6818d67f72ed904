"""The Textual app: load bundles into the ``core`` engine and show them, keyboard first.

Build it with :func:`build_app` (tests feed fixture bundles the same way the
CLI feeds ``lens browse`` paths). The app holds one reactive value, the
:class:`~lens_tui.selection.Selection` (loaded bundles, datasets A and B,
budget r, threshold τ, layer, ticked bundles); keys and views replace it and
the views watch it (:mod:`lens_tui.views.base`). The tabs, number keys,
focus and palette commands come from :mod:`lens_tui.views.registry`, so
nothing here names a view. Nothing here imports torch: the collection view
imports ``core.collect`` inside its worker, when a run starts.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.lazy import Lazy
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from core.engine import Profile
from core.errors import LensError
from core.formats.bundle import find_bundles
from core.formats.evaluation import Evaluation, evaluation_files, read_evaluation
from lens_tui.bundle_reading import failure_line, read_signature
from lens_tui.messages import BundleCollected, SelectionEdited
from lens_tui.palette import TypedValues
from lens_tui.selection import NO_BUNDLES, Selection
from lens_tui.state import SavedState, load_state, save_state
from lens_tui.views import registry
from lens_tui.views.base import SelectionView
from lens_tui.views.registry import ViewSpec
from lens_tui.widgets.bundle_filter import BundleFilter
from lens_tui.widgets.controls import ControlBar
from lens_tui.widgets.scrollbar import use_cell_scrollbars

__all__ = ["NO_BUNDLES", "TAU_LADDER", "LensApp", "build_app"]  # NO_BUNDLES: for tests

#: τ steps through these with t / T (the default 0.01 is the paper's).
TAU_LADDER = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)

_DATASET_A = Binding.Group("A", compact=True)
_DATASET_B = Binding.Group("B", compact=True)
_BUDGET = Binding.Group("r", compact=True)
_TAU = Binding.Group("τ", compact=True)
_LAYER = Binding.Group("layer", compact=True)
_VIEWS = Binding.Group("view", compact=True)


class LensApp(App[None]):
    """Expert Calibration Lens."""

    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    COMMANDS = App.COMMANDS | {TypedValues}
    TITLE = "Expert Calibration Lens"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    BINDINGS = [
        # Quit and help first: the footer is cut at 80 columns, and these two must always show.
        Binding("q", "quit", "Quit", tooltip="Quit (ctrl+q works everywhere)"),
        Binding("question_mark", "help", "Help", tooltip="Help: views and every key"),
        Binding("a", "cycle('a', 1)", "next A", group=_DATASET_A, tooltip="Next dataset A"),
        Binding("A", "cycle('a', -1)", "prev A", group=_DATASET_A, tooltip="Previous dataset A"),
        Binding("b", "cycle('b', 1)", "next B", group=_DATASET_B, tooltip="Next dataset B"),
        Binding("B", "cycle('b', -1)", "prev B", group=_DATASET_B, tooltip="Previous dataset B"),
        Binding("x", "swap", "Swap", tooltip="Swap A and B", show=False),
        Binding(
            "slash",
            "filter_bundles",
            "filter",
            tooltip="Filter bundles by name: the bundle lists and the A/B keys show only matches "
            "(enter keeps, escape clears)",
        ),
        Binding(
            "e",
            "export",
            "Export",
            tooltip="Export what the current view shows to a JSON file in the current folder",
            show=False,
        ),
        Binding(
            "m",
            "next_model",
            "Model",
            tooltip="Next model (A and B are bundles of one model)",
            show=False,
        ),
        Binding("plus", "step_r(1)", "r+1", group=_BUDGET, tooltip="r + 1"),
        Binding("minus", "step_r(-1)", "r-1", group=_BUDGET, tooltip="r − 1"),
        Binding(
            "greater_than_sign", "step_r(8)", "r+E/16", group=_BUDGET, tooltip="r + E/16 (coarse)"
        ),
        Binding(
            "less_than_sign", "step_r(-8)", "r-E/16", group=_BUDGET, tooltip="r − E/16 (coarse)"
        ),
        Binding("t", "step_tau(1)", "τ up", group=_TAU, tooltip="Raise the sparsity threshold τ"),
        Binding(
            "T", "step_tau(-1)", "τ down", group=_TAU, tooltip="Lower the sparsity threshold τ"
        ),
        Binding(
            "right_square_bracket",
            "step_layer(1)",
            "next layer",
            group=_LAYER,
            tooltip="Next layer",
        ),
        Binding(
            "left_square_bracket",
            "step_layer(-1)",
            "prev layer",
            group=_LAYER,
            tooltip="Previous layer",
        ),
    ]

    #: Everything the views show; replaced (never mutated) on each change, clamped on assignment.
    #: ``repaint=False``: a reactive of the App otherwise repaints the whole screen on every
    #: change (every widget re-rendered at 160×48 for a new r); the views and the control bar
    #: watch it and refresh just what they change.
    selection: reactive[Selection] = reactive(
        Selection, init=False, always_update=False, repaint=False
    )

    def __init__(
        self,
        paths: Sequence[str | Path] = (),
        *,
        notice: str | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__()
        use_cell_scrollbars()
        self._initial_paths = [Path(p) for p in paths]
        self._notice = notice
        # Served to browsers (lens serve), the app must not load models or write
        # files for whoever visits: no view that writes, no key or command that opens it.
        self.read_only = read_only
        self.views: tuple[ViewSpec, ...] = tuple(
            spec for spec in registry.VIEWS if not (read_only and spec.writes)
        )
        self._widgets: dict[str, Widget] = {}
        # The view keys 1…N follow the registry, so they are added per app rather than
        # declared in BINDINGS (after the declared ones: the footer keeps this order).
        for number, spec in enumerate(self.views, start=1):
            self._bindings.key_to_bindings.setdefault(str(number), []).append(
                Binding(
                    str(number),
                    f"view({spec.id!r})",
                    spec.label,
                    group=_VIEWS,
                    tooltip=spec.tooltip,
                    show=False,  # the tabs show the numbers; the footer has no room at 80 columns
                )
            )

    # Read-only shorthands for the selection's fields.
    @property
    def profiles(self) -> list[Profile]:
        return list(self.selection.profiles)

    @property
    def labels(self) -> list[str]:
        return list(self.selection.labels)

    @property
    def evaluations(self) -> list[Evaluation]:
        return list(self.selection.evaluations)

    @property
    def a(self) -> int:
        return self.selection.a

    @property
    def b(self) -> int:
        return self.selection.b

    @property
    def r(self) -> int:
        return self.selection.r

    @property
    def tau(self) -> float:
        return self.selection.tau

    @property
    def layer(self) -> int:
        return self.selection.layer

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield ControlBar(id="controls")
        with TabbedContent(initial=self.views[0].id, id="views"):
            for number, spec in enumerate(self.views, start=1):
                with TabPane(f"{number} {spec.label}", id=spec.id):
                    view = spec.view(id=spec.widget_id)
                    # Hidden views mount just after the first frame, which keeps start-up fast.
                    yield view if number == 1 else Lazy(view)
        yield BundleFilter(id="bundle-filter")
        yield Footer()

    def on_mount(self) -> None:
        if self._notice:
            self.notify(self._notice, title="no bundles", severity="warning", timeout=15)
        # A served app belongs to no one: it neither reads nor writes state.
        saved = SavedState() if self.read_only else load_state()
        self.load_paths(self._initial_paths, remembered=saved)
        self._focus_view(self.views[0].id)
        self._restore_state(saved)
        self.call_after_refresh(gc.freeze)

    # ------------------------------------------------------------------ remembered state

    def _restore_state(self, saved: SavedState) -> None:
        """Apply the remembered r, τ and view (A and B were chosen as the bundles loaded)."""
        changes: dict[str, object] = {}
        if saved.r is not None and self.selection.profiles:
            changes["r"] = saved.r  # clamped to 1..E by the selection
        if saved.tau is not None and 0 < saved.tau < 1:
            changes["tau"] = saved.tau
        if changes:
            self.selection = self.selection.replace(**changes)
        if saved.view in {spec.id for spec in self.views} and saved.view != self.views[0].id:
            self.action_view(saved.view)

    def current_state(self) -> SavedState:
        """What to remember of this run (bundles by absolute path)."""
        selection = self.selection
        if not selection.profiles:
            return SavedState(tau=selection.tau, view=self._active_view().id)
        return SavedState(
            a=str(Path(selection.profile_a.bundle.path).resolve()),
            b=str(Path(selection.profile_b.bundle.path).resolve()),
            r=selection.r,
            tau=selection.tau,
            view=self._active_view().id,
        )

    async def action_quit(self) -> None:
        """Quit; during a collection, ask first (work since the last checkpoint would be lost)."""
        running = [w for w in self.workers if w.group == "collect" and not w.is_finished]
        if running:
            from lens_tui.widgets.confirm import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self._quit_now()

            self.push_screen(
                ConfirmScreen(
                    "A collection is running. Quit anyway? Samples since the last checkpoint "
                    "are lost (a re-run resumes from it); ctrl+g cancels the run cleanly."
                ),
                answered,
            )
            return
        self._quit_now()

    def _quit_now(self) -> None:
        if not self.read_only:
            save_state(self.current_state())
        self.exit()

    # ------------------------------------------------------------------ bundles

    def load_paths(self, paths: Iterable[Path], *, remembered: SavedState | None = None) -> int:
        """Open bundle files and folders of bundles; each bad file becomes a notification.

        Returns the number of bundles loaded. A corrupt bundle never stops the others.
        The selection changes once, at the end, so the views repaint once.

        Only A's and B's values are read now (checked, and their signatures
        computed): every other bundle is opened by its header alone and read on
        first use (the Matrix view, a new A or B), where a corrupt one is
        reported then. Twelve frontier-scale bundles would otherwise cost
        seconds of start-up for figures the first frame does not show.
        ``remembered`` A and B (the last run's, when loaded again) are chosen
        before anything is read, so a restart reads those two, not four.
        """
        paths = list(paths)
        selection = self.selection
        for file in evaluation_files(paths):
            selection = self._with_evaluation(selection, file)
        paths = [p for p in paths if p.is_dir() or p.suffix != ".json"]
        opened: list[Profile] = []
        for path in paths:
            if path.is_dir() and not find_bundles([path]) and not evaluation_files([path]):
                self.notify(
                    f"{path}: no bundles (*.safetensors) in this folder", severity="warning"
                )
                continue
            for file in find_bundles([path]):
                profile = self._read_profile(file, defer_value_checks=True)
                if profile is not None:
                    opened.append(profile)
        while True:  # until A and B read cleanly: a corrupt one is dropped and another taken
            chosen = selection
            for profile in opened:
                chosen, _ = chosen.with_profile(profile)
            chosen = self._start_on_a_pair(chosen)
            if remembered is not None:
                chosen = self._remembered_pair(chosen, remembered)
            bad = self._unreadable_pair_member(chosen, opened)
            if bad is None:
                break
            opened.remove(bad)
        self.selection = chosen
        return len(opened)

    def _unreadable_pair_member(
        self, selection: Selection, opened: list[Profile]
    ) -> Profile | None:
        """A or B among ``opened`` whose values fail to read (after a notification), else None."""
        if not selection.profiles:
            return None
        pair = [
            p
            for p in dict.fromkeys((selection.profile_a, selection.profile_b))
            if p in opened and not p.has_signature
        ]
        if not pair:
            return None
        # Both at once: numpy releases the GIL while it streams a file, so on two cores
        # A and B are read in the time of one (most of a frontier-scale cold start).
        with ThreadPoolExecutor(len(pair)) as pool:
            failures = list(pool.map(read_signature, pair))
        for profile, failure in zip(pair, failures):
            if failure is not None:
                self.report_unreadable_bundle(failure)
                return profile
        return None

    @staticmethod
    def _remembered_pair(selection: Selection, saved: SavedState) -> Selection:
        """A and B as the last run left them, for those of its bundles loaded now."""
        paths = [str(Path(p.bundle.path).resolve()) for p in selection.profiles]
        changes = {
            side: paths.index(wanted)
            for side in ("a", "b")
            if (wanted := getattr(saved, side)) in paths
        }
        return selection.replace(**changes) if changes else selection

    @staticmethod
    def _start_on_a_pair(selection: Selection) -> Selection:
        """Start on a model with two bundles or more when A's is alone (``lens browse x sample/``).

        A lone bundle of another model would otherwise open the app on A vs A.
        """
        if not selection.profiles or len(selection.of_model()) > 1:
            return selection
        groups = [selection.of_model(model) for model in selection.models]
        larger = max(groups, key=len)
        if len(larger) < 2:
            return selection
        return selection.replace(a=larger[0], b=larger[1])

    def add_bundle(self, path: Path, *, select: bool = True) -> bool:
        """Load one bundle into the set (replacing one with the same path); notify on failure.

        With ``select`` it becomes dataset B.
        """
        profile = self._read_profile(path)
        if profile is None:
            return False
        selection, index = self.selection.with_profile(profile)
        if select:
            selection = selection.replace(b=index)
            self.notify(
                f"loaded {selection.labels[index]} as dataset B", title="bundle added", markup=False
            )
        self.selection = selection
        return True

    def _read_profile(self, path: Path, *, defer_value_checks: bool = False) -> Profile | None:
        """The bundle at ``path``, or ``None`` after a notification.

        Its signature is read now (so a bad file fails here) unless
        ``defer_value_checks``: then only its header is.
        """
        try:
            profile = Profile.load(path, defer_value_checks=defer_value_checks)
        except Exception as exc:  # an unreadable file must not take the app down
            self.report_unreadable_bundle(failure_line(path, exc))
            return None
        if not defer_value_checks and not self._read_signature(profile):
            return None
        hashed = profile.bundle.hash_routed_layers
        if hashed:
            self.notify(
                f"{profile.bundle.name}: MoE layers {', '.join(map(str, hashed))} are hash-routed: "
                "their experts come from a token-id table, so their top-k counts say what the "
                "table chose, not the router (prob_sum is still the router's softmax)",
                title="hash-routed layers",
                timeout=15,
                markup=False,
            )
        return profile

    def _read_signature(self, profile: Profile) -> bool:
        """Check ``profile``'s values and compute its signature; notify and say False if bad."""
        failure = read_signature(profile)
        if failure is not None:
            self.report_unreadable_bundle(failure)
        return failure is None

    def report_unreadable_bundle(self, line: str) -> None:
        """A notification for a bundle that could not be read (at start, or on first use)."""
        self.notify(
            line, title="could not load a bundle", severity="error", timeout=15, markup=False
        )

    def add_evaluation(self, path: Path) -> bool:
        """Load one ``lens evaluate`` result for the Predict view; notify on failure."""
        selection = self._with_evaluation(self.selection, path)
        changed = selection is not self.selection
        self.selection = selection
        return changed

    def _with_evaluation(self, selection: Selection, path: Path) -> Selection:
        try:
            evaluation = read_evaluation(path)
        except LensError as exc:
            self.notify(
                str(exc), title="could not load an evaluation", severity="error", markup=False
            )
            return selection
        return selection.with_evaluation(evaluation)

    # ------------------------------------------------------------------ selection

    def validate_selection(self, selection: Selection) -> Selection:
        return selection.clamped()

    def _widget(self, selector: str, kind: type[Widget] = Widget):
        """The widget for ``#id``, looked up once (keys call this many times a second).

        ``None`` while it is not mounted (the hidden views mount just after the first frame).
        """
        widget = self._widgets.get(selector)
        if widget is None:
            found = self.query(selector)
            if not found:
                return None
            widget = self._widgets[selector] = found.first(kind)
        return widget

    def _active_view(self) -> ViewSpec:
        active = self._widget("#views", TabbedContent).active
        return next(spec for spec in self.views if spec.id == active)

    # ------------------------------------------------------------------ actions

    def action_cycle(self, side: str, step: int) -> None:
        """Next / previous dataset A or B among the current model's bundles the filter shows.

        From a bundle the filter hides, ``step`` 1 goes to the first shown, -1 to the last.
        """
        selection = self.selection
        if not selection.profiles:
            return
        same = [i for i in selection.of_model() if selection.matches(i)]
        if not same:
            self.notify(
                f"no bundle of {selection.model} matches the filter {selection.name_filter!r}",
                severity="warning",
                markup=False,
            )
            return
        current = getattr(selection, side)
        if current in same:
            index = same[(same.index(current) + step) % len(same)]
        else:
            index = same[0] if step > 0 else same[-1]
        self.selection = selection.replace(**{side: index})

    def action_filter_bundles(self) -> None:
        """``/``: open the filter bar (``ctrl+p`` is the command palette)."""
        self._widget("#bundle-filter", BundleFilter).open()

    def on_bundle_filter_closed(self, message: BundleFilter.Closed) -> None:
        """Enter or Escape in the filter: the keys go back to the current view."""
        self._focus_view(self._active_view().id)

    def action_export(self) -> None:
        """Write the current view's result as JSON (``lens … --json``'s document) to a new file."""
        from lens_tui.export import export_view

        if self.read_only:
            self.notify("export is off: served read-only", severity="warning")
            return
        spec = self._active_view()
        view = self._widget(f"#{spec.widget_id}")
        selection = self.selection
        parts = []
        if selection.profiles:
            parts = [selection.label_a, "vs", selection.label_b, f"r{selection.r}"]
        inputs = [p.bundle.path for p in selection.profiles]
        inputs += [Path(e.path) for e in selection.evaluations if e.path is not None]
        try:
            path = export_view(view, spec.id, parts, inputs, Path.cwd())
        except (LensError, OSError) as exc:
            self.notify(str(exc), title="export", severity="error")
            return
        self.notify(f"wrote {path}", title="export")

    def action_next_model(self) -> None:
        """Switch to the next model's bundles: A and B become its first two."""
        selection = self.selection
        models = selection.models
        if len(models) < 2:
            self.notify("all loaded bundles are of one model", severity="warning")
            return
        model = models[(models.index(selection.model) + 1) % len(models)]
        same = selection.of_model(model)
        same = [i for i in same if selection.matches(i)] or same  # within the filter if it can
        self.selection = selection.replace(a=same[0], b=same[1] if len(same) > 1 else same[0])
        self.notify(f"model {model}: {len(same)} bundle(s)", title="model")

    def action_set_dataset(self, side: str, index: int) -> None:
        if 0 <= index < len(self.selection.profiles):
            self.selection = self.selection.replace(**{side: index})

    def action_swap(self) -> None:
        self.selection = self.selection.replace(a=self.selection.b, b=self.selection.a)

    def action_step_r(self, step: int) -> None:
        if not self.selection.profiles:
            return
        experts = self.selection.profile_a.num_experts
        if abs(step) > 1:  # the coarse step: E/16 experts
            step = max(1, experts // 16) * (1 if step > 0 else -1)
        self.set_r(self.selection.r + step)

    def set_r(self, r: int) -> None:
        if not self.selection.profiles:
            return
        self.selection = self.selection.replace(r=int(r))

    def action_step_tau(self, step: int) -> None:
        tau = self.selection.tau
        index = min(range(len(TAU_LADDER)), key=lambda i: abs(TAU_LADDER[i] - tau))
        self.set_tau(TAU_LADDER[min(max(0, index + step), len(TAU_LADDER) - 1)])

    def set_tau(self, tau: float) -> None:
        self.selection = self.selection.replace(tau=float(tau))

    def action_step_layer(self, step: int) -> None:
        self.set_layer(self.selection.layer + step)

    def set_layer(self, layer: int) -> None:
        if not self.selection.profiles:
            return
        self.selection = self.selection.replace(layer=int(layer))

    def on_selection_edited(self, message: SelectionEdited) -> None:
        self.selection = self.selection.replace(**message.changes)

    def on_bundle_collected(self, message: BundleCollected) -> None:
        self.add_bundle(message.path, select=True)

    def action_view(self, view: str) -> None:
        if view not in {spec.id for spec in self.views}:
            self.notify("The Collect view is off: served read-only (lens serve --allow-collect)")
            return
        self._widget("#views", TabbedContent).active = view
        self._focus_view(view)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        spec = self._active_view()
        widget = self._widget(f"#{spec.widget_id}")
        if isinstance(widget, SelectionView):
            widget.reveal()  # a lazy view not mounted yet paints itself on mount
        self._focus_view(spec.id)

    def _focus_view(self, view: str) -> None:
        spec = next(spec for spec in self.views if spec.id == view)
        widgets = self.query(spec.focus or f"#{spec.widget_id}")
        if widgets:
            widgets.first().focus(scroll_visible=False)
        else:  # a lazy view not mounted yet
            self.call_after_refresh(self._focus_view, view)

    def action_help(self) -> None:
        # markdown loads only when help is asked for
        from lens_tui.help import WIDGET_KEYS, HelpScreen

        everywhere = [*self.BINDINGS, *self._view_bindings(), *WIDGET_KEYS]
        current = self._active_view()
        # The current view's keys first: they are the ones the user is looking for.
        ordered = [current, *(spec for spec in self.views if spec is not current)]
        sections = [(current.id, view_keys(current))]
        sections += [("everywhere", everywhere)]
        sections += [(spec.id, view_keys(spec)) for spec in ordered[1:]]
        views = [(spec.label, getattr(spec.view, "SUMMARY", "")) for spec in self.views]
        keys = [(w, [b for b in bs if isinstance(b, Binding)]) for w, bs in sections if bs]
        self.push_screen(HelpScreen(views, keys))

    def _view_bindings(self) -> list[Binding]:
        """The number keys 1…N (added per app in ``__init__``)."""
        keys = [str(number) for number in range(1, len(self.views) + 1)]
        return [self._bindings.key_to_bindings[key][-1] for key in keys]

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for spec in self.views:
            yield SystemCommand(
                f"View: {spec.label}",
                f"Switch to the {spec.label} view",
                lambda v=spec.id: self.action_view(v),
            )
        for spec in self.views:  # a view's own entries (e.g. Predict's "Predict x: …")
            commands = getattr(spec.view, "palette_commands", None)
            if commands is not None:
                yield from commands(self)
        for index, label in enumerate(self.selection.labels):
            yield SystemCommand(
                f"Set A: {label}", "Dataset A", lambda i=index: self.action_set_dataset("a", i)
            )
            yield SystemCommand(
                f"Set B: {label}", "Dataset B", lambda i=index: self.action_set_dataset("b", i)
            )
        yield SystemCommand("Swap A and B", "Exchange datasets A and B", self.action_swap)
        if self.selection.profiles:
            experts = self.selection.profile_a.num_experts
            for r in range(1, experts + 1):
                yield SystemCommand(
                    f"Set r = {r}",
                    f"Keep {r} of {experts} experts per layer",
                    lambda r=r: self.set_r(r),
                )
            for layer in range(self.selection.profile_a.num_layers):
                yield SystemCommand(
                    f"Go to layer {layer}", "Select this layer", lambda i=layer: self.set_layer(i)
                )
        for tau in TAU_LADDER:
            yield SystemCommand(
                f"Set τ = {tau:g}", "Sparsity threshold", lambda t=tau: self.set_tau(t)
            )


def view_keys(spec: ViewSpec) -> list[Binding]:
    """A view's own bindings plus the keys its widgets handle (``HELP_KEYS``), for help."""
    return [*spec.view.__dict__.get("BINDINGS", []), *getattr(spec.view, "HELP_KEYS", [])]


def build_app(
    paths: Sequence[str | Path] = (), *, notice: str | None = None, read_only: bool = False
) -> LensApp:
    """The app over these bundle files / folders (what ``lens browse`` and the tests use).

    ``read_only`` drops the views that write (Collect), as ``lens serve`` asks.
    """
    return LensApp(paths, notice=notice, read_only=read_only)
