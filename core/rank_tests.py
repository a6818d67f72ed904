"""How sure is a rank correlation over masks? Bootstrap interval and permutation p-value.

An evaluation holds a few dozen masks, so a Spearman ρ between a predictor
and the measured loss increase moves a lot with which masks happened to be
evaluated. Two numbers say how much:

- a **percentile bootstrap interval**: resample the masks (pairs of predictor
  value and loss increase) with replacement, recompute ρ on each replicate
  (average ranks, so the duplicated masks are ties, as they must be), and take
  the ``(1 − level)/2`` and ``(1 + level)/2`` percentiles. Replicates where one
  side is constant (no ranking) are skipped.
- a **permutation p-value**, two-sided: shuffle which loss increase goes with
  which mask; p = (1 + #{|ρ_perm| ≥ |ρ_obs|}) / (P + 1), the +1 correction
  that keeps p > 0 and the test exact under the null.

Both are seeded and vectorised: ranks of every replicate at once by
broadcasting comparisons (masks per evaluation are few), and a permuted ρ is
one dot product of centred ranks, since permuting pairs does not change the
ranks of either side. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_REPLICATES = 2000
DEFAULT_PERMUTATIONS = 2000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
#: Fewer pairs than this and a rank correlation means nothing (reported as null).
MIN_POINTS = 3
#: Comparison elements materialised at once when ranking replicates.
_CHUNK_ELEMENTS = 1 << 23


def row_average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based average ranks along the last axis of ``[R, n]`` (ties share the mean rank).

    rank = #{< x} + (#{== x} + 1) / 2, counted by broadcasting in row chunks.
    """
    x = np.asarray(x, dtype=np.float64)
    rows, n = x.shape
    out = np.empty_like(x)
    step = max(1, _CHUNK_ELEMENTS // max(n * n, 1))
    for start in range(0, rows, step):
        block = x[start : start + step]
        less = (block[:, None, :] < block[:, :, None]).sum(axis=2)
        equal = (block[:, None, :] == block[:, :, None]).sum(axis=2)
        out[start : start + step] = less + (equal + 1) / 2.0
    return out


def row_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of each row pair of ``[R, n]`` arrays; NaN where a row is constant."""
    rx = row_average_ranks(x)
    ry = row_average_ranks(y)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, (rx * ry).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.nan)
    return np.clip(rho, -1.0, 1.0)


@dataclass(frozen=True)
class RankTest:
    """ρ with its bootstrap interval and permutation p-value, over ``n`` pairs."""

    spearman: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    n: int

    def to_json(self) -> dict:
        return {
            "spearman": self.spearman,
            "ci": None if self.ci is None else [self.ci[0], self.ci[1]],
            "p_value": self.p_value,
            "n": self.n,
        }


def bootstrap_indices(n: int, replicates: int, seed: int) -> np.ndarray:
    """``[R, n]`` indices drawn with replacement: the masks of each bootstrap replicate."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    return rng.integers(0, n, size=(replicates, n))


def permutation_indices(n: int, permutations: int, seed: int) -> np.ndarray:
    """``[P, n]`` random permutations of ``range(n)`` (argsort of uniform keys)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    return np.argsort(rng.random((permutations, n)), axis=1)


def percentile_ci(values: np.ndarray, level: float) -> tuple[float, float] | None:
    """Percentile interval of the finite replicate values; None if under half are finite."""
    finite = values[np.isfinite(values)]
    if finite.size < max(2, values.size // 2):
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return float(lo), float(hi)


def rank_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    replicates: int = DEFAULT_REPLICATES,
    permutations: int = DEFAULT_PERMUTATIONS,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> RankTest:
    """Spearman ρ(x, y) with a percentile bootstrap interval and a two-sided permutation p.

    Pairs with a missing side (NaN) are dropped first; with fewer than
    :data:`MIN_POINTS` pairs left, or a constant side, everything is None.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < MIN_POINTS:
        return RankTest(None, None, None, n)
    observed = row_spearman(x[None], y[None])[0]
    if not np.isfinite(observed):
        return RankTest(None, None, None, n)
    idx = bootstrap_indices(n, replicates, seed)
    ci = percentile_ci(row_spearman(x[idx], y[idx]), level)
    rx = row_average_ranks(x[None])[0]
    ry = row_average_ranks(y[None])[0]
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    null = (ry[permutation_indices(n, permutations, seed)] @ rx) / denom
    extreme = int(np.count_nonzero(np.abs(null) >= abs(observed) - 1e-12))
    p_value = (1 + extreme) / (permutations + 1)
    return RankTest(float(observed), ci, float(p_value), n)
