"""The Textual app: load bundles into the ``core`` engine and show them, keyboard first.

Build it with :func:`build_app` (tests feed fixture bundles the same way the
CLI feeds ``lens browse`` paths). The app holds the selection — datasets A
and B, budget r, threshold τ and the layer — and hands it to the views, which
ask ``core`` for every number. Nothing here imports torch: the collection
view imports ``core.collect`` inside its worker, when a run starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static, TabbedContent, TabPane

from core import metrics as m
from core.engine import Profile, compare
from core.errors import LensError
from core.formats.bundle import find_bundles
from core.formats.evaluation import Evaluation, evaluation_files, read_evaluation
from lens_tui.messages import BundleCollected, LayerPicked
from lens_tui.views.ablation import AblationView
from lens_tui.views.collect import CollectView
from lens_tui.views.compare import CompareView
from lens_tui.views.matrix import MatrixView
from lens_tui.views.predict import PredictView
from lens_tui.widgets.colors import A_HEX, B_HEX

#: τ steps through these with t / T (the default 0.01 is the paper's).
TAU_LADDER = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
VIEWS = {
    "compare": "Compare",
    "ablation": "Ablation",
    "matrix": "Matrix",
    "collect": "Collect",
    "predict": "Predict",
}

_DATASET_A = Binding.Group("A", compact=True)
_DATASET_B = Binding.Group("B", compact=True)
_BUDGET = Binding.Group("r", compact=True)
_TAU = Binding.Group("τ", compact=True)
_LAYER = Binding.Group("layer", compact=True)
_VIEWS = Binding.Group("view", compact=True)


class ControlBar(Static):
    """One line with the current selection: A, B, r, τ, layer."""


class LensApp(App[None]):
    """Expert Calibration Lens."""

    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "Expert Calibration Lens"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]

    BINDINGS = [
        Binding("question_mark", "help", "Help", tooltip="Help: views and every key"),
        Binding("a", "cycle('a', 1)", "next A", group=_DATASET_A, tooltip="Next dataset A"),
        Binding("A", "cycle('a', -1)", "prev A", group=_DATASET_A, tooltip="Previous dataset A"),
        Binding("b", "cycle('b', 1)", "next B", group=_DATASET_B, tooltip="Next dataset B"),
        Binding("B", "cycle('b', -1)", "prev B", group=_DATASET_B, tooltip="Previous dataset B"),
        Binding("x", "swap", "Swap", tooltip="Swap A and B"),
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
        Binding("q", "quit", "Quit", tooltip="Quit (ctrl+q works everywhere)"),
        Binding("1", "view('compare')", "Compare", group=_VIEWS, tooltip="Compare view"),
        Binding("2", "view('ablation')", "Ablation", group=_VIEWS, tooltip="Ablation view"),
        Binding("3", "view('matrix')", "Matrix", group=_VIEWS, tooltip="N-way matrix view"),
        Binding("4", "view('collect')", "Collect", group=_VIEWS, tooltip="Collection view"),
        Binding("5", "view('predict')", "Predict", group=_VIEWS, tooltip="Predicted vs actual"),
    ]

    def __init__(
        self,
        paths: Sequence[str | Path] = (),
        *,
        notice: str | None = None,
        read_only: bool = False,
    ) -> None:
        super().__init__()
        # Served to browsers (lens serve), the app must not load models or write
        # files for whoever visits: no Collect view, no key or command that opens it.
        self.read_only = read_only
        self.views = {k: v for k, v in VIEWS.items() if not (read_only and k == "collect")}
        self._initial_paths = [Path(p) for p in paths]
        self._notice = notice
        self.profiles: list[Profile] = []
        self.evaluations: list[Evaluation] = []  # lens evaluate results, for the Predict view
        self.labels: list[str] = []
        self.a = 0
        self.b = 0
        self.r = 1
        self.tau = m.DEFAULT_TAU
        self.layer = 0
        self._stale: set[str] = set(VIEWS)
        self._widgets: dict[str, Widget] = {}

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield ControlBar(id="controls")
        with TabbedContent(initial="compare", id="views"):
            with TabPane("1 Compare", id="compare"):
                yield CompareView(id="compare-view")
            # Hidden views mount just after the first frame, which keeps start-up fast.
            with TabPane("2 Ablation", id="ablation"):
                yield Lazy(AblationView(id="ablation-view"))
            with TabPane("3 Matrix", id="matrix"):
                yield Lazy(MatrixView(id="matrix-view"))
            if not self.read_only:
                with TabPane("4 Collect", id="collect"):
                    yield Lazy(CollectView(id="collect-view"))
            with TabPane("5 Predict", id="predict"):
                yield Lazy(PredictView(id="predict-view"))
        yield Footer()

    def on_mount(self) -> None:
        if self._notice:
            self.notify(self._notice, title="no bundles", severity="warning", timeout=15)
        self.load_paths(self._initial_paths)
        self.selection_changed()
        self._focus_view("compare")

    # ------------------------------------------------------------------ bundles

    def load_paths(self, paths: Iterable[Path]) -> int:
        """Load bundle files and folders of bundles; each bad file becomes a notification.

        Returns the number of bundles loaded. A corrupt bundle never stops the others.
        """
        loaded = 0
        paths = list(paths)
        for file in evaluation_files(paths):
            self.add_evaluation(file)
        paths = [p for p in paths if p.is_dir() or p.suffix != ".json"]
        for path in paths:
            if path.is_dir() and not find_bundles([path]) and not evaluation_files([path]):
                self.notify(
                    f"{path}: no bundles (*.safetensors) in this folder", severity="warning"
                )
                continue
            for file in find_bundles([path]):
                if self.add_bundle(file, select=False):
                    loaded += 1
        return loaded

    def add_bundle(self, path: Path, *, select: bool = True) -> bool:
        """Load one bundle into the set (replacing one with the same path); notify on failure."""
        try:
            profile = Profile.load(path)
            profile.prob  # noqa: B018 - read the signature now, so a bad file fails here
        except LensError as exc:
            self.notify(
                str(exc),
                title="could not load a bundle",
                severity="error",
                timeout=15,
                markup=False,
            )
            return False
        except Exception as exc:  # an unreadable file must not take the app down
            self.notify(
                f"{path}: {type(exc).__name__}: {exc}",
                markup=False,
                title="could not load a bundle",
                severity="error",
                timeout=15,
            )
            return False
        resolved = path.resolve()
        for index, existing in enumerate(self.profiles):
            if existing.bundle.path.resolve() == resolved:
                self.profiles[index] = profile
                break
        else:
            self.profiles.append(profile)
            index = len(self.profiles) - 1
        self.labels = unique_labels(self.profiles)
        if len(self.profiles) == 1:
            self.a = self.b = 0
            self.r = max(1, profile.num_experts // 4)
        elif len(self.profiles) == 2 and self.a == self.b == 0:
            self.b = 1
        if select:
            self.b = index
            self.notify(
                f"loaded {self.labels[index]} as dataset B", title="bundle added", markup=False
            )
            self.selection_changed()
        return True

    def add_evaluation(self, path: Path) -> bool:
        """Load one ``lens evaluate`` result for the Predict view; notify on failure."""
        try:
            evaluation = read_evaluation(path)
        except LensError as exc:
            self.notify(
                str(exc), title="could not load an evaluation", severity="error", markup=False
            )
            return False
        self.evaluations = [e for e in self.evaluations if e.path != evaluation.path]
        self.evaluations.append(evaluation)
        return True

    # ------------------------------------------------------------------ selection

    def _clamp(self) -> None:
        count = len(self.profiles)
        if count == 0:
            return
        self.a %= count
        self.b %= count
        experts = self.profiles[self.a].num_experts
        self.r = min(max(1, self.r), experts)
        self.layer = min(max(0, self.layer), self.profiles[self.a].num_layers - 1)

    def selection_changed(self) -> None:
        """Something the views depend on changed: update the active view now, others when shown."""
        self._clamp()
        self._update_controls()
        self._stale = set(self.views) - {"collect"}
        self._refresh_active()

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

    def _active_view(self) -> str:
        return self._widget("#views", TabbedContent).active

    def _refresh_active(self) -> None:
        view = self._active_view()
        if view not in self._stale:
            return
        if self._widget(f"#{view}-view") is None:  # a lazy view not mounted yet: after this frame
            self.call_after_refresh(self._refresh_active)
            return
        self._stale.discard(view)
        self._refresh_view(view)

    def _refresh_view(self, view: str) -> None:
        if view == "compare":
            self._refresh_compare()
        elif view == "ablation":
            self._refresh_ablation()
        elif view == "matrix":
            self._refresh_matrix()
        elif view == "predict":
            self._widget("#predict-view", PredictView).show(self.evaluations, self.profiles)

    def _refresh_compare(self) -> None:
        compare_view = self._widget("#compare-view", CompareView)
        if not self.profiles:
            compare_view.show_message(NO_BUNDLES)
            return
        a, b = self.profiles[self.a], self.profiles[self.b]
        try:
            result = compare(a, b, self.r, self.tau)
        except LensError as exc:
            compare_view.show_message(str(exc))
            return
        compare_view.show(result, self.labels[self.a], self.labels[self.b], self.layer)

    def _refresh_ablation(self) -> None:
        view = self._widget("#ablation-view", AblationView)
        if not self.profiles:
            view.show_message(NO_BUNDLES)
            return
        view.show(self.profiles[self.a], self.labels[self.a], self.r)

    def _refresh_matrix(self) -> None:
        view = self._widget("#matrix-view", MatrixView)
        if not self.profiles:
            view.show_message(NO_BUNDLES)
            return
        view.show(self.profiles, self.labels, self.r)

    def _update_controls(self) -> None:
        bar = self._widget("#controls", ControlBar)
        if not self.profiles:
            bar.update(Text("no bundles loaded", style="bold yellow"))
            return
        a = self.profiles[self.a]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" A ", style=f"bold reverse {A_HEX}")
        text.append(f" {self.labels[self.a]}  ", style=f"bold {A_HEX}")
        text.append(" B ", style=f"bold reverse {B_HEX}")
        text.append(f" {self.labels[self.b]}  ", style=f"bold {B_HEX}")
        text.append("r ", style="dim")
        text.append(f"{self.r}", style="bold")
        text.append(f"/{a.num_experts}  ", style="dim")
        text.append("τ ", style="dim")
        text.append(f"{self.tau:g}  ", style="bold")
        text.append("layer ", style="dim")
        text.append(f"{self.layer}", style="bold")
        text.append(f"/{a.num_layers - 1}", style="dim")
        bar.update(text, layout=False)  # always one line (app.tcss): no layout pass per key

    # ------------------------------------------------------------------ actions

    def action_cycle(self, side: str, step: int) -> None:
        if not self.profiles:
            return
        setattr(self, side, (getattr(self, side) + step) % len(self.profiles))
        self.selection_changed()

    def action_set_dataset(self, side: str, index: int) -> None:
        if 0 <= index < len(self.profiles):
            setattr(self, side, index)
            self.selection_changed()

    def action_swap(self) -> None:
        self.a, self.b = self.b, self.a
        self.selection_changed()

    def action_step_r(self, step: int) -> None:
        if not self.profiles:
            return
        experts = self.profiles[self.a].num_experts
        if abs(step) > 1:  # the coarse step: E/16 experts
            step = max(1, experts // 16) * (1 if step > 0 else -1)
        self.set_r(self.r + step)

    def set_r(self, r: int) -> None:
        if not self.profiles:
            return
        r = min(max(1, int(r)), self.profiles[self.a].num_experts)
        if r != self.r:
            self.r = r
            self.selection_changed()

    def action_step_tau(self, step: int) -> None:
        index = min(range(len(TAU_LADDER)), key=lambda i: abs(TAU_LADDER[i] - self.tau))
        self.set_tau(TAU_LADDER[min(max(0, index + step), len(TAU_LADDER) - 1)])

    def set_tau(self, tau: float) -> None:
        if tau != self.tau:
            self.tau = float(tau)
            self.selection_changed()

    def action_step_layer(self, step: int) -> None:
        self.set_layer(self.layer + step)

    def set_layer(self, layer: int) -> None:
        if not self.profiles:
            return
        layer = min(max(0, layer), self.profiles[self.a].num_layers - 1)
        if layer == self.layer:
            return
        self.layer = layer
        self._update_controls()
        if self._active_view() == "compare" and "compare" not in self._stale:
            self._widget("#compare-view", CompareView).show_layer(layer)

    def on_layer_picked(self, message: LayerPicked) -> None:
        self.set_layer(message.layer)

    def on_bundle_collected(self, message: BundleCollected) -> None:
        self.add_bundle(message.path, select=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the key of a view this app does not have (Collect, when read-only)."""
        return not (action == "view" and parameters and parameters[0] not in self.views)

    def action_view(self, view: str) -> None:
        if view not in self.views:
            self.notify("The Collect view is off: served read-only (lens serve --allow-collect)")
            return
        self._widget("#views", TabbedContent).active = view
        self._focus_view(view)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._refresh_active()
        self._focus_view(self._active_view())

    def _focus_view(self, view: str) -> None:
        target = {
            "compare": "#layer-table",
            "ablation": "#ablation-view",
            "matrix": "#matrix-bundles",
            "collect": "#collect-view",
            "predict": "#predict-table",
        }[view]
        widgets = self.query(target)
        if widgets:
            widgets.first().focus(scroll_visible=False)
        else:  # a lazy view not mounted yet
            self.call_after_refresh(self._focus_view, view)

    def action_help(self) -> None:
        from lens_tui.help import HelpScreen  # markdown loads only when help is asked for

        sections = [
            ("everywhere", self.BINDINGS),
            ("compare", CompareView.BINDINGS),
            ("ablation", AblationView.BINDINGS),
            ("collect", CollectView.BINDINGS),
        ]
        self.push_screen(
            HelpScreen([(w, [b for b in bs if isinstance(b, Binding)]) for w, bs in sections])
        )

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for view, title in self.views.items():
            yield SystemCommand(
                f"View: {title}", f"Switch to the {title} view", lambda v=view: self.action_view(v)
            )
        for index, label in enumerate(self.labels):
            yield SystemCommand(
                f"Set A: {label}", "Dataset A", lambda i=index: self.action_set_dataset("a", i)
            )
            yield SystemCommand(
                f"Set B: {label}", "Dataset B", lambda i=index: self.action_set_dataset("b", i)
            )
        yield SystemCommand("Swap A and B", "Exchange datasets A and B", self.action_swap)
        if self.profiles:
            experts = self.profiles[self.a].num_experts
            for r in range(1, experts + 1):
                yield SystemCommand(
                    f"Set r = {r}",
                    f"Keep {r} of {experts} experts per layer",
                    lambda r=r: self.set_r(r),
                )
            for layer in range(self.profiles[self.a].num_layers):
                yield SystemCommand(
                    f"Go to layer {layer}", "Select this layer", lambda i=layer: self.set_layer(i)
                )
        for tau in TAU_LADDER:
            yield SystemCommand(
                f"Set τ = {tau:g}", "Sparsity threshold", lambda t=tau: self.set_tau(t)
            )


NO_BUNDLES = (
    "No bundles loaded. Open some with `lens browse PATH…` (files or folders of "
    "*.safetensors), or collect one in the Collect view (4)."
)


def unique_labels(profiles: list[Profile]) -> list[str]:
    """Short names for pickers: the file name, with the folder added where names clash."""
    names = [p.name for p in profiles]
    labels = []
    for profile, name in zip(profiles, names):
        if names.count(name) > 1:
            labels.append(f"{profile.bundle.path.parent.name}/{name}")
        else:
            labels.append(name)
    return labels


def build_app(
    paths: Sequence[str | Path] = (), *, notice: str | None = None, read_only: bool = False
) -> LensApp:
    """The app over these bundle files / folders (what ``lens browse`` and the tests use).

    ``read_only`` drops the Collect view, the app's only writer (``lens serve``).
    """
    return LensApp(paths, notice=notice, read_only=read_only)
