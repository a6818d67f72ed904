"""Ablation view: Jaccard vs calibration-sequence count for dataset A at budget r.

``core.ablation.ablate`` does the work; this view holds the step, cap and
shuffle settings and plots ``to_final`` and ``stepwise``. It follows dataset A
and r of the app's selection; τ, B and the layer do not concern it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from core.ablation import DEFAULT_CONVERGENCE, Ablation, ablate, ablate_shuffled
from core.engine import Profile
from core.errors import LensError
from lens_tui.selection import NO_BUNDLES, Selection
from lens_tui.views.base import SETTLE_S, SelectionView, cancelled
from lens_tui.widgets.colors import A_HEX, B_HEX
from lens_tui.widgets.plots import AblationPlot

#: Checkpoints a fresh bundle starts with (step = N // this).
DEFAULT_CHECKPOINTS = 32
SHUFFLE_SEED = 0
#: Random orders behind the band (``lens ablate --shuffles``), drawn from seed 0 in a worker.
BAND_SHUFFLES = 20


class AblationView(SelectionView, Vertical, can_focus=True):
    """Jaccard@r vs sequence count; step, cap and shuffle adjustable with keys."""

    #: What the help screen says of this view (Markdown, after "**Ablation** — ").
    SUMMARY = """\
    Jaccard of the top-r mask vs the number of calibration
    sequences for dataset A: to the final mask and step to step, with the count
    at which the mask converges."""

    BINDINGS = [
        Binding("s", "step(2)", "Step ×2", group=Binding.Group("step")),
        Binding("S", "step(0.5)", "Step ÷2", group=Binding.Group("step")),
        Binding("c", "cap(2)", "Cap ×2", group=Binding.Group("cap")),
        Binding("C", "cap(0.5)", "Cap ÷2", group=Binding.Group("cap")),
        Binding("z", "shuffle", "Shuffle"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.step: int | None = None
        self.cap: int | None = None
        self.seed: int | None = None
        self.threshold = DEFAULT_CONVERGENCE
        self.result: Ablation | None = None
        # ShuffledAblations.to_json() for the current settings; None while the worker runs.
        self.spread: dict | None = None
        self._profile: Profile | None = None
        self._label = ""
        self._r = 1

    def compose(self) -> ComposeResult:
        yield Static(id="ablation-settings")
        yield Static(id="ablation-status")
        yield AblationPlot(id="ablation-plot")

    # ------------------------------------------------------------------ showing

    def depends_on(self, selection: Selection) -> object:
        if not selection.profiles:
            return None
        return (selection.profile_a, selection.label_a, selection.r)

    def show_selection(self, selection: Selection) -> None:
        if not selection.profiles:
            self.show_message(NO_BUNDLES)
            return
        self.show(selection.profile_a, selection.label_a, selection.r)

    def show_message(self, message: str) -> None:
        self.result = None
        self._profile = None
        self.query_one("#ablation-settings", Static).update("")
        self.query_one("#ablation-status", Static).update(Text(message, style="bold yellow"))
        self.query_one(AblationPlot).clear_plot()

    def show(self, profile: Profile, label: str, r: int) -> None:
        """Run the ablation of ``profile`` at budget r with the current settings and plot it."""
        if profile is not self._profile:
            # A new dataset starts from its own defaults.
            samples = profile.bundle.num_samples
            self.step = max(1, samples // DEFAULT_CHECKPOINTS)
            self.cap = samples
        self._profile, self._label, self._r = profile, label, r
        self._run()

    def _run(self) -> None:
        profile = self._profile
        if profile is None or self.step is None or self.cap is None:
            return
        samples = profile.bundle.num_samples
        self.cap = max(1, min(self.cap, samples))
        self.step = max(1, min(self.step, self.cap))
        try:
            result = ablate(profile, self._r, self.step, self.cap, self.seed)
        except LensError as exc:
            self.show_message(str(exc))
            self._profile = profile
            return
        self.result = result
        order = "shuffled" if self.seed is not None else "in order"
        settings = Text()
        settings.append(f"A {self._label}", style=f"bold {A_HEX}")
        settings.append(
            f"  r={self._r}  step={self.step}  cap={result.max_samples} of {samples:,}  "
            f"{plural(len(result.counts), 'checkpoint')}  {order}"
        )
        self.query_one("#ablation-settings", Static).update(settings)
        self.spread = None
        self._paint()
        self._start_band(profile)

    def _paint(self) -> None:
        """Status and plot from the point result and, once the worker is back, the band."""
        result = self.result
        if result is None:
            return
        converged = result.converged_at(self.threshold)
        status = convergence_text(result, self.threshold, converged)
        status.append("\n")
        status.append(band_text(self.spread), style="dim")
        self.query_one("#ablation-status", Static).update(status)
        band = None if self.spread is None else self.spread["to_final_band"]
        self.query_one(AblationPlot).show(result, self.threshold, converged, band)

    def _start_band(self, profile: Profile) -> None:
        """The ablation over ``BAND_SHUFFLES`` random orders, in a worker (a pass each)."""
        r, step, cap, threshold = self._r, self.step, self.cap, self.threshold
        settings = (r, step, cap)

        def work(_selection: Selection) -> dict | None:
            if cancelled(SETTLE_S):  # s pressed again at once: leave it to the newer job
                return None
            runs = ablate_shuffled(profile, r, step, cap, BAND_SHUFFLES, SHUFFLE_SEED)
            return runs.to_json(threshold)

        def done(spread: dict | None) -> None:
            if spread is None:
                return
            if (self._r, self.step, self.cap) == settings and self._profile is profile:
                self.spread = spread
                self._paint()

        selection = self.selection
        if selection is not None and selection.profiles:
            self.run_on_selection(selection, work, done)

    # ------------------------------------------------------------------ actions

    def action_step(self, factor: float) -> None:
        if self.step is None:
            return
        self.step = max(1, int(round(self.step * factor)))
        self._run()

    def action_cap(self, factor: float) -> None:
        """Double or halve the cap; it never goes below the step (that would change the step).

        Shrinking the cap under the step used to lower the step silently; now the cap
        stops at the step and a notification says how to go further.
        """
        if self.cap is None or self._profile is None or self.step is None:
            return
        wanted = max(1, min(int(round(self.cap * factor)), self._profile.bundle.num_samples))
        if wanted < self.step:
            if self.cap == self.step:
                self.notify(
                    f"the cap is already the step ({self.step}): halve the step first (S)",
                    title="cap",
                )
                return
            wanted = self.step
            self.notify(f"cap stopped at the step ({self.step}); S halves the step", title="cap")
        self.cap = wanted
        self._run()

    def action_shuffle(self) -> None:
        self.seed = None if self.seed is not None else SHUFFLE_SEED
        self._run()


def plural(count: int, noun: str) -> str:
    """``1 checkpoint``, ``3 checkpoints``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def convergence_text(result: Ablation, threshold: float, converged: int | None) -> Text:
    """The plot's legend (plotext's own would cover the curves near 1), then the convergence."""
    text = Text()
    text.append("━ to final", style=f"bold {A_HEX}")
    text.append(" ")
    text.append("━ stepwise", style=f"bold {B_HEX}")
    text.append("  ")
    if converged is None:
        text.append(
            f"not converged: to-final Jaccard does not stay ≥ {threshold:g} "
            "before the last checkpoint (more data may change the mask)",
            style="bold yellow",
        )
    else:
        text.append(f"converged at n = {converged}", style="bold green")
        text.append(f" (to-final Jaccard stays ≥ {threshold:g})")
    return text


def band_text(spread: dict | None) -> str:
    """The convergence count over random orders: median and range (``lens ablate --shuffles``)."""
    if spread is None:
        return f"over {BAND_SHUFFLES} random orders: …"
    head = f"over {spread['shuffles']} random orders (seed {spread['seed']}): "
    tail = " · band: to-final range and median"
    lo, hi = spread["converged_at_range"]
    if lo is None:
        return head + "the mask converged within the data in none of them" + tail
    median = spread["converged_at_median"]
    where = "not within the data" if median is None else f"n = {median:g}"
    return (
        f"{head}converged at {where} (median), range {lo}–"
        f"{'beyond the data' if hi is None else hi}; "
        f"{spread['not_converged']} never converged{tail}"
    )
