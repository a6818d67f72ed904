"""A bootstrap interval of a mask's loss increase, over held-out samples, paired.

Two masks whose loss increases differ by less than the evaluation's own noise
cannot be ordered by any predictor, so ``lens evaluate`` reports how far the
loss increase would move with another draw of held-out text of the same kind.
The sample is the unit (its tokens are not independent). Each replicate draws
n samples with replacement (counts w_i) and recomputes the token-weighted
increase on the *same* samples for the mask and for the original model:

    Δ* = Σ_i w_i (NLL_mask,i − NLL_base,i) / Σ_i w_i T_i

with NLL_·,i the summed next-token NLL of sample i and T_i its scored tokens.
Pairing removes the variance the two share (a hard sample is hard for both),
which is most of it. The interval is the percentile interval at ``level``;
seeded, numpy only (the per-sample sums come from the runner's tallies).
"""

from __future__ import annotations

import numpy as np

from core.uncertainty import bootstrap_counts

DEFAULT_CI_REPLICATES = 1000
DEFAULT_CI_LEVEL = 0.95
DEFAULT_CI_SEED = 0


def loss_increase_interval(
    nll_mask: np.ndarray,
    nll_base: np.ndarray,
    tokens: np.ndarray,
    *,
    replicates: int = DEFAULT_CI_REPLICATES,
    level: float = DEFAULT_CI_LEVEL,
    seed: int = DEFAULT_CI_SEED,
) -> tuple[float, float] | None:
    """``(lo, hi)`` of the paired bootstrap of the loss increase; None without samples or
    replicates (``replicates=0`` turns the interval off)."""
    diff = np.asarray(nll_mask, dtype=np.float64) - np.asarray(nll_base, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.float64)
    if replicates < 1 or diff.size == 0 or tokens.sum() <= 0:
        return None
    rng = np.random.default_rng(seed)
    counts = bootstrap_counts(rng, diff.size, replicates).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (counts @ diff) / (counts @ tokens)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)
