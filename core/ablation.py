"""Jaccard vs calibration-sequence count (docs/formats.md §Ablation).

One pass over the first ``n_max`` samples: running float64 sums are advanced
chunk by chunk from one checkpoint count to the next, and the proxy mask is
taken at each checkpoint. Nothing is ever re-summed from the start, so 100
steps cost one read of the data plus 100 tiny ``[L, E]`` sorts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.engine import Profile
from core.errors import LensError

DEFAULT_CONVERGENCE = 0.95


@dataclass(frozen=True)
class Ablation:
    profile: Profile
    r: int
    step: int
    max_samples: int
    seed: int | None
    counts: list[int]
    layer_stepwise: np.ndarray  # [K, L], row 0 NaN
    layer_to_final: np.ndarray  # [K, L]

    @property
    def stepwise(self) -> list[float | None]:
        return [None] + [m.layer_mean(row) for row in self.layer_stepwise[1:]]

    @property
    def to_final(self) -> list[float | None]:
        return [m.layer_mean(row) for row in self.layer_to_final]

    def converged_at(self, threshold: float = DEFAULT_CONVERGENCE) -> int | None:
        """The first count from which ``to_final`` stays at or above ``threshold``.

        The last checkpoint is the reference itself (Jaccard 1 by definition), so
        a curve that only reaches the threshold there has not shown convergence
        within the data: that is ``None``, like a curve that never reaches it.
        """
        values = self.to_final
        first = None
        for count, value in zip(self.counts[:-1], values[:-1]):
            if value is not None and value >= threshold:
                if first is None:
                    first = count
            else:
                first = None
        return first

    def to_json(self, threshold: float = DEFAULT_CONVERGENCE) -> dict:
        def rows(array: np.ndarray) -> list[list[float | None]]:
            return [[m.to_jsonable(v) for v in row] for row in array]

        return {
            "bundle": self.profile.bundle.summary(),
            "r": self.r,
            "step": self.step,
            "max": self.max_samples,
            "seed": self.seed,
            "counts": self.counts,
            "stepwise": self.stepwise,
            "to_final": self.to_final,
            "layers": {
                "stepwise": rows(self.layer_stepwise),
                "to_final": rows(self.layer_to_final),
            },
            "convergence": {"threshold": threshold, "converged_at": self.converged_at(threshold)},
        }


def checkpoint_counts(step: int, max_samples: int | None, num_samples: int) -> list[int]:
    """n_k = s, 2s, ... up to min(n_max, N)."""
    if step < 1:
        raise LensError(f"--step must be at least 1 (got {step})")
    cap = num_samples if max_samples is None else min(int(max_samples), num_samples)
    if cap < step:
        raise LensError(
            f"no checkpoint fits: step {step} is larger than the sample cap {cap} "
            f"(bundle has {num_samples} samples)"
        )
    return list(range(step, cap + 1, step))


def ablate(
    profile: Profile, r: int, step: int, max_samples: int | None = None, seed: int | None = None
) -> Ablation:
    """The ablation curve for one bundle at budget r."""
    bundle = profile.bundle
    m.check_budget(r, bundle.num_experts, str(bundle.path))
    counts = checkpoint_counts(step, max_samples, bundle.num_samples)
    order: np.ndarray | None = None
    if seed is not None:
        order = np.random.default_rng(seed).permutation(bundle.num_samples)
    prob_sum, token_count = bundle.prob_sum, np.asarray(bundle.token_count)

    running = np.zeros((bundle.num_layers, bundle.num_experts), dtype=np.float64)
    tokens = 0
    masks = np.zeros((len(counts), bundle.num_layers, bundle.num_experts), dtype=bool)
    defined = np.zeros(len(counts), dtype=bool)
    start = 0
    for k, count in enumerate(counts):
        # Sorted indices read the memmap front to back; the sum does not care about order.
        chunk = slice(start, count) if order is None else np.sort(order[start:count])
        running += np.add.reduce(prob_sum[chunk], axis=0, dtype=np.float64)
        tokens += int(token_count[chunk].sum())
        start = count
        if tokens > 0:
            masks[k] = m.proxy_mask(running / tokens, r)
            defined[k] = True

    num_k = len(counts)
    to_final = np.full((num_k, bundle.num_layers), np.nan)
    stepwise = np.full((num_k, bundle.num_layers), np.nan)
    if defined[-1]:
        final = masks[-1]
        to_final[defined] = m.jaccard(masks[defined], final[None])
    both = defined[1:] & defined[:-1]
    stepwise[1:][both] = m.jaccard(masks[:-1][both], masks[1:][both])
    return Ablation(profile, int(r), int(step), counts[-1], seed, counts, stepwise, to_final)


# --------------------------------------------------------------------------- over random orders


@dataclass(frozen=True)
class ShuffledAblations:
    """The ablation repeated over K random sample orders: how much the answer depends on order.

    One order gives one convergence count; which sequences happen to come first
    can move it a lot on small sets, so the spread over orders is the honest
    error bar on "how many sequences are enough".
    """

    seed: int
    runs: list[Ablation]

    def converged(self, threshold: float = DEFAULT_CONVERGENCE) -> list[int | None]:
        return [run.converged_at(threshold) for run in self.runs]

    def to_json(self, threshold: float = DEFAULT_CONVERGENCE) -> dict:
        """Median and range of the convergence count; a run that never converged counts as
        beyond the data (so a median or maximum that falls on one is null)."""
        converged = self.converged(threshold)
        beyond = np.array([np.inf if c is None else c for c in converged], dtype=np.float64)
        median = float(np.median(beyond))
        finite = beyond[np.isfinite(beyond)]
        to_final = np.array(
            [[np.nan if v is None else v for v in run.to_final] for run in self.runs]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a count undefined in every run
            band = {
                "median": np.nanmedian(to_final, axis=0),
                "min": np.nanmin(to_final, axis=0),
                "max": np.nanmax(to_final, axis=0),
            }
        return {
            "shuffles": len(self.runs),
            "seed": self.seed,
            "threshold": threshold,
            "converged_at": converged,
            "not_converged": int(np.count_nonzero(~np.isfinite(beyond))),
            "converged_at_median": median if np.isfinite(median) else None,
            "converged_at_range": [
                int(finite.min()) if finite.size else None,
                int(beyond.max()) if np.isfinite(beyond.max()) else None,
            ],
            "to_final_band": {k: [m.to_jsonable(v) for v in vals] for k, vals in band.items()},
        }


def ablate_shuffled(
    profile: Profile,
    r: int,
    step: int,
    max_samples: int | None = None,
    shuffles: int = 20,
    seed: int | None = None,
) -> ShuffledAblations:
    """The ablation over ``shuffles`` random orders, drawn reproducibly from ``seed`` (default 0)."""
    if shuffles < 1:
        raise LensError(f"--shuffles must be at least 1 (got {shuffles})")
    base = 0 if seed is None else int(seed)
    seeds = np.random.SeedSequence(base).generate_state(int(shuffles))
    runs = [ablate(profile, r, step, max_samples, int(s)) for s in seeds]
    return ShuffledAblations(base, runs)
