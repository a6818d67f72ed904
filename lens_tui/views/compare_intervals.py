"""The Compare view's error bars and noise test: what the background worker computes, and its text.

``lens compare --ci`` runs :func:`core.uncertainty.bootstrap_compare` and
:func:`core.uncertainty.permutation_test` with 200 replicates; the app runs the
same functions with the same seed, so the intervals it shows equal the
command's. They are too slow for a key press on large bundles (about 8 s for
200 replicates plus 200 permutations of a 61 × 384 pair with 1,000 resampling
units on a loaded 2-core machine, 0.2 s on ``sample_stats/``), so the view
computes them in a worker (:meth:`SelectionView.run_on_selection`) and, above
:data:`LARGE_WORK`, with :data:`LARGE_REPLICATES` replicates, which it says on
screen. A point repaint stays cheap while the worker runs: on the 61 × 384
pair (N = 2,000) with the machine at load 15 on 2 cores, a new r repainted
in 119 ms (median of 8) with the worker computing against 93 ms with the
intervals switched off; the intervals followed about 2 s later. A held key
starts one job, not one per repeat (see :func:`lens_tui.views.base.cancelled`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core import uncertainty as u
from core.engine import Profile
from core.sample_sums import MAX_UNITS
from lens_tui.render import fmt
from lens_tui.selection import Selection
from lens_tui.views.base import SETTLE_S, cancelled

#: Replicates (and permutations) the app uses, as ``lens compare --ci`` does by default.
APP_REPLICATES = u.DEFAULT_REPLICATES
#: Replicates above :data:`LARGE_WORK`: half the cost, intervals a little noisier.
LARGE_REPLICATES = 100
#: Resampling units × layers × experts (summed over A and B) from which the app halves the
#: replicates: a 61 × 384 pair with 1,000 units each is 47 M (~8 s at 200 on 2 loaded cores).
LARGE_WORK = 10_000_000


@dataclass(frozen=True)
class CompareIntervals:
    """Bootstrap intervals and the permutation test for one (A, B, r, τ)."""

    ci: u.CompareCI
    difference: u.Difference

    @property
    def replicates(self) -> int:
        return self.ci.replicates

    def caption(self) -> str:
        """What the intervals are, for the screen (says so when the app used fewer replicates)."""
        text = f"[lo, hi]: {self.ci.level:.0%} bootstrap intervals, {self.replicates} replicates"
        if self.replicates < APP_REPLICATES:
            text += f" (fewer than lens compare --ci's {APP_REPLICATES}: large bundles)"
        return text


def replicates_for(a: Profile, b: Profile) -> int:
    """How many replicates the app computes for A vs B (see :data:`LARGE_WORK`)."""
    shape = a.num_layers * a.num_experts
    units = sum(min(p.bundle.num_samples, MAX_UNITS) for p in (a, b))
    return APP_REPLICATES if units * shape <= LARGE_WORK else LARGE_REPLICATES


def interval_part(selection: Selection) -> object:
    """The part of the selection the intervals depend on: all the view shows but the layer."""
    s = selection
    return (s.profiles, s.labels, s.a, s.b, s.r, s.tau)


def compute(selection: Selection) -> CompareIntervals | None:
    """The worker's job: intervals and test for the selection's A, B, r and τ (seed 0).

    ``None`` when a newer selection cancelled it (checked before each stage):
    then nothing is delivered anyway, and the CPU is left to the newer job.
    """
    if cancelled(SETTLE_S):
        return None
    a, b = selection.profile_a, selection.profile_b
    replicates = replicates_for(a, b)
    ci = u.bootstrap_compare(a, b, selection.r, selection.tau, replicates, seed=u.DEFAULT_SEED)
    if cancelled():
        return None
    difference = u.permutation_test(a, b, selection.r, replicates, seed=u.DEFAULT_SEED)
    return CompareIntervals(ci, difference)


def interval_text(pair, key: str) -> str:
    """``[lo, hi]`` in the metric's own format (as the CLI prints it); a dash when undefined."""
    if pair is None:
        return "[—]"
    lo, hi = (float(v) for v in pair)
    if lo != lo or hi != hi:  # NaN: no interval for this metric here
        return "[—]"
    return f"[{fmt(lo, key)}, {fmt(hi, key)}]"
