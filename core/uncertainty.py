"""Error bars and a "different, or just noise?" test, by resampling calibration sequences.

Calibration sets are small (the paper uses 32–64 sequences), so the first
question about any metric is how much it would move with another draw of the
same kind of data. Two tools answer it, both numpy only:

- :func:`bootstrap_stats` / :func:`bootstrap_compare`: resample whole sequences
  with replacement (a sequence's tokens are not independent, so the sequence is
  the unit) and recompute every metric on each replicate; the percentile
  interval at ``level`` is the error bar, per layer and for the mean over layers.
- :func:`permutation_test`: pool the sequences of A and B, split them at random
  into sets of the original sizes, and recompute JS and Jaccard@r. If the
  observed values look like the shuffled ones, A and B are indistinguishable
  from resampling.

Speed: a replicate's signature is P* = Σ_i w_i prob_sum[i] / Σ_i w_i T_i with
integer resampling counts w (token-weighted, exactly like the signature
itself). All replicates at once are ONE matmul ``w[R, N] @ prob_sum[N, L·E]``
per side (float32, as stored; the counts are small integers, so nothing is
lost but float32 rounding of the sums), chunked over R to bound memory. The
metrics are then evaluated on ``[R, L, E]`` arrays, vectorised. Above
``MAX_UNITS`` sequences the units resampled are blocks of consecutive
sequences (:func:`resampling_units`), which keeps the matmul small at any N.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.engine import Profile, check_compatible
from core.errors import LensError
from core.sample_sums import MAX_UNITS, blocked_sums, group_bounds, unit_bounds

DEFAULT_REPLICATES = 200
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
#: Bytes of resampling weights materialised at once; bounds memory at any N and R.
CHUNK_BYTES = 1 << 27


def check_options(replicates: int, level: float) -> None:
    """Refuse replicate counts and levels that give no interval."""
    if int(replicates) < 2:
        raise LensError(f"--replicates must be at least 2 (got {replicates})")
    if not 0.0 < float(level) < 1.0:
        raise LensError(f"--level must be between 0 and 1, exclusive (got {level})")


# --------------------------------------------------------------------------- resampling


def bootstrap_counts(rng: np.random.Generator, n: int, replicates: int) -> np.ndarray:
    """``[R, n]`` float32 counts: how often each sequence is drawn in each replicate.

    Draws n indices with replacement per replicate and counts them with one
    ``bincount`` (much faster than ``rng.multinomial`` for large n).
    """
    draws = rng.integers(0, n, size=(replicates, n))
    offsets = (np.arange(replicates) * n)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=replicates * n)
    return counts.reshape(replicates, n).astype(np.float32)


def weighted_sums(weights: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``Σ_i weights[r, i] · flat[i]`` for every row r: ``[R, N] × [N, D] → [R, D]`` float64.

    One float32 BLAS matmul per chunk of rows; ``flat`` (often a memmap) is read
    once per chunk.
    """
    n = flat.shape[0]
    rows = max(1, min(len(weights), CHUNK_BYTES // (4 * max(n, flat.shape[1]))))
    out = np.empty((len(weights), flat.shape[1]), dtype=np.float64)
    for start in range(0, len(weights), rows):
        block = weights[start : start + rows].astype(np.float32, copy=False)
        out[start : start + rows] = block @ flat
    return out


def divide_rows(total: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``total[r] / tokens[r]`` per replicate; NaN where a replicate has no tokens.

    Divides ``total`` in place (callers pass the fresh sums of :func:`weighted_sums`).
    """
    tokens = tokens.reshape((-1,) + (1,) * (total.ndim - 1))
    if (tokens > 0).all():  # the rule: a replicate without tokens needs a tiny bundle
        return np.divide(total, tokens, out=total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tokens > 0, total / np.where(tokens > 0, tokens, 1.0), np.nan)


@dataclass(frozen=True)
class Units:
    """What the bootstrap and the permutation test resample: sums over ``G`` units.

    ``prob``/``energy`` are ``[G, L·E]`` float32 and ``tokens`` ``[G]`` float64. A
    unit is one sequence (G = N) or, for large bundles, a block of consecutive ones.
    """

    prob: np.ndarray
    energy: np.ndarray | None
    tokens: np.ndarray

    @property
    def count(self) -> int:
        return int(self.tokens.shape[0])


def resampling_units(profile: Profile, max_units: int | None = None) -> Units:
    """The bundle's sequences, or ``max_units`` blocks of consecutive sequences when it has more.

    Every replicate costs G·L·E multiply-adds per side, so at N = 20,000
    sequences the sequence bootstrap is ~18 G per side and bound by the matmul
    (20× a plain compare on 2 cores). Above ``MAX_UNITS`` sequences the units
    are G non-overlapping blocks of N/G consecutive sequences (sizes differing
    by at most one): a block bootstrap, the standard tool when neighbours may be
    dependent (consecutive chunks of one document are), and as valid as the
    sequence bootstrap when they are not. The blocks' sums come from the pass
    that checked and summed the bundle on load (:mod:`core.sample_sums`), so
    they cost no read of their own. tests/core/test_uncertainty.py
    checks coverage and the test's calibration with blocks too. Cached on the
    profile: one pass serves the bootstrap and the permutation test.
    """
    limit = MAX_UNITS if max_units is None else int(max_units)
    return profile.cached(("resampling_units", limit), lambda: _units(profile, limit))


def _units(profile: Profile, limit: int) -> Units:
    bundle = profile.bundle
    n = bundle.num_samples
    tokens = np.asarray(bundle.token_count, dtype=np.float64)
    names = ["prob_sum", "energy_sum"] if bundle.has("energy_sum") else ["prob_sum"]
    if n <= limit:
        sums = [_flat(bundle.tensors[name]) for name in names]
    else:
        bounds = group_bounds(n, limit)
        if np.array_equal(bounds, unit_bounds(n)):  # formed by the pass that checked the bundle
            sums = [bundle.unit_sums(name) for name in names]
        else:  # another unit count (tests): a pass of its own
            sums = [blocked_sums(bundle.tensors[name], bounds).groups for name in names]
        tokens = np.add.reduceat(tokens, bounds[:-1])
    return Units(sums[0], sums[1] if len(sums) > 1 else None, tokens)


def _flat(sums: np.ndarray) -> np.ndarray:
    flat = sums.reshape(sums.shape[0], -1)
    return flat if flat.dtype == np.float32 else flat.astype(np.float32)


@dataclass(frozen=True)
class Replicates:
    """Signatures of one bundle under R resamplings: P* and E* as ``[R, L, E]``."""

    prob: np.ndarray
    energy: np.ndarray | None


def replicate_signatures(units: Units, weights: np.ndarray, shape: tuple[int, int]) -> Replicates:
    """P* (and E*, when the bundle has energy) for each row of resampling weights over units."""
    tokens = weights.astype(np.float64) @ units.tokens
    prob = divide_rows(weighted_sums(weights, units.prob).reshape(-1, *shape), tokens)
    energy = None
    if units.energy is not None:
        energy = divide_rows(weighted_sums(weights, units.energy).reshape(-1, *shape), tokens)
    return Replicates(prob, energy)


def _shape(profile: Profile) -> tuple[int, int]:
    return profile.num_layers, profile.num_experts


# --------------------------------------------------------------------------- intervals


def percentile_interval(values: np.ndarray, level: float) -> np.ndarray:
    """``[2, ...]`` lower and upper percentile over axis 0 (replicates), NaNs skipped."""
    tail = 100.0 * (1.0 - level) / 2.0
    return percentiles(values, [tail, 100.0 - tail])


def percentiles(values: np.ndarray, percents: list[float]) -> np.ndarray:
    """``np.nanpercentile(values, percents, axis=0)``, all-NaN slices staying NaN."""
    if not np.isnan(values).any():  # the common case; nanpercentile is far slower
        return linear_percentiles(values, percents)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
        return np.nanpercentile(values, percents, axis=0)


def linear_percentiles(values: np.ndarray, percents: list[float]) -> np.ndarray:
    """``np.percentile(values, percents, axis=0)`` for values without NaN, bit for bit.

    numpy's own (method "linear") calls ``np.unique``, whose first call imports
    ``numpy.ma``: ~50 ms, a fifth of a whole plain ``lens compare`` at
    N = 20,000. This is the same arithmetic on a sorted copy: the virtual index
    (n − 1)·q, its floor and the next order statistic, and numpy's two-sided
    interpolation (from the lower value below γ = 0.5, from the upper one above).
    """
    n = values.shape[0]
    virtual = (n - 1) * np.true_divide(np.asarray(percents, dtype=np.float64), 100)
    below = np.floor(virtual)
    above = below + 1
    below[virtual >= n - 1] = above[virtual >= n - 1] = -1  # the top: the largest value
    lo, hi = below.astype(np.intp), above.astype(np.intp)
    gamma = (virtual - lo).reshape((-1,) + (1,) * (values.ndim - 1))
    ordered = np.sort(values, axis=0)
    a, b = ordered[lo], ordered[hi]
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=np.broadcast_to(gamma >= 0.5, out.shape))
    return out


def replicate_layer_means(values: np.ndarray) -> np.ndarray:
    """Mean over layers (NaNs skipped) per replicate: ``[R, L] → [R]``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=-1)


def _pair(lo: float, hi: float) -> list[float] | None:
    lo_j, hi_j = m.to_jsonable(lo), m.to_jsonable(hi)
    return None if lo_j is None or hi_j is None else [lo_j, hi_j]


@dataclass(frozen=True)
class Intervals:
    """Percentile intervals of several metrics: per layer ``[L, 2]`` and of the layer mean ``[2]``."""

    layers: dict[str, np.ndarray | None]
    mean: dict[str, np.ndarray | None]

    @classmethod
    def of(cls, replicate_values: dict[str, np.ndarray | None], level: float) -> Intervals:
        layers: dict[str, np.ndarray | None] = {}
        mean: dict[str, np.ndarray | None] = {}
        for key, values in replicate_values.items():
            if values is None:
                layers[key] = mean[key] = None
                continue
            layers[key] = percentile_interval(values, level).T
            mean[key] = percentile_interval(replicate_layer_means(values), level)
        return cls(layers, mean)

    def mean_json(self) -> dict[str, list[float] | None]:
        return {k: None if v is None else _pair(*v) for k, v in self.mean.items()}

    def layer_json(self, layer: int) -> dict[str, list[float] | None]:
        return {k: None if v is None else _pair(*v[layer]) for k, v in self.layers.items()}


def univariate_replicates(rep: Replicates, tau: float) -> dict[str, np.ndarray | None]:
    return dict(m.univariate(rep.prob, tau))


def bivariate_replicates(a: Replicates, b: Replicates, r: int) -> dict[str, np.ndarray | None]:
    """Every bivariate metric of docs/formats.md §Metrics per replicate, ``[R, L]`` each."""
    mask_a, mask_b = m.proxy_mask(a.prob, r), m.proxy_mask(b.prob, r)
    kept_ab, kept_ba = m.retained_mass(mask_a, b.prob), m.retained_mass(mask_b, a.prob)
    # Each side's own proxy mask gives its best top-r mass (m.best_retained_mass, by the
    # same summation), so the relative values reuse the masks instead of re-ranking.
    best_a, best_b = m.retained_mass(mask_a, a.prob), m.retained_mass(mask_b, b.prob)
    rel_ab, rel_ba = m.share_of_best(kept_ab, best_b), m.share_of_best(kept_ba, best_a)
    return {
        "js_divergence": m.js_divergence(a.prob, b.prob),
        "jaccard": m.jaccard(mask_a, mask_b),
        "pearson_energy": m.pearson(a.energy, b.energy),
        "retained_mass_a_to_b": kept_ab,
        "retained_mass_b_to_a": kept_ba,
        "retained_mass_rel_a_to_b": rel_ab,
        "retained_mass_rel_b_to_a": rel_ba,
    }


@dataclass(frozen=True)
class StatsCI:
    level: float
    replicates: int
    seed: int
    univariate: Intervals

    def to_json(self) -> dict:
        layers = self.univariate.layers
        num_layers = len(next(v for v in layers.values() if v is not None))
        return {
            "level": self.level,
            "replicates": self.replicates,
            "seed": self.seed,
            "mean": self.univariate.mean_json(),
            "layers": [self.univariate.layer_json(layer) for layer in range(num_layers)],
        }


def bootstrap_stats(
    profile: Profile,
    tau: float = m.DEFAULT_TAU,
    replicates: int = DEFAULT_REPLICATES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> StatsCI:
    """Percentile intervals of the four univariate metrics of one bundle."""
    check_options(replicates, level)
    units = resampling_units(profile)
    weights = bootstrap_counts(np.random.default_rng(seed), units.count, int(replicates))
    rep = replicate_signatures(units, weights, _shape(profile))
    return StatsCI(
        float(level),
        int(replicates),
        int(seed),
        Intervals.of(univariate_replicates(rep, tau), level),
    )


@dataclass(frozen=True)
class CompareCI:
    level: float
    replicates: int
    seed: int
    bivariate: Intervals
    univariate_a: Intervals
    univariate_b: Intervals

    def to_json(self) -> dict:
        num_layers = len(next(v for v in self.bivariate.layers.values() if v is not None))
        return {
            "level": self.level,
            "replicates": self.replicates,
            "seed": self.seed,
            "mean": self.bivariate.mean_json(),
            "univariate_mean": {
                "a": self.univariate_a.mean_json(),
                "b": self.univariate_b.mean_json(),
            },
            "layers": [self.bivariate.layer_json(layer) for layer in range(num_layers)],
        }


def bootstrap_compare(
    a: Profile,
    b: Profile,
    r: int,
    tau: float = m.DEFAULT_TAU,
    replicates: int = DEFAULT_REPLICATES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> CompareCI:
    """Intervals of every bivariate metric of A vs B and the univariate ones of each side.

    A and B are resampled independently (they are independent samples), from
    streams split off one seed.
    """
    check_options(replicates, level)
    check_compatible([a, b])
    m.check_budget(r, a.num_experts, str(a.bundle.path))
    rng_a, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    units_a, units_b = resampling_units(a), resampling_units(b)
    rep_a = replicate_signatures(
        units_a, bootstrap_counts(rng_a, units_a.count, replicates), _shape(a)
    )
    rep_b = replicate_signatures(
        units_b, bootstrap_counts(rng_b, units_b.count, replicates), _shape(b)
    )
    return CompareCI(
        float(level),
        int(replicates),
        int(seed),
        Intervals.of(bivariate_replicates(rep_a, rep_b, int(r)), level),
        Intervals.of(univariate_replicates(rep_a, tau), level),
        Intervals.of(univariate_replicates(rep_b, tau), level),
    )


# --------------------------------------------------------------------------- permutation test


@dataclass(frozen=True)
class Difference:
    """The permutation test of A vs B on the layer means of JS and Jaccard@r."""

    permutations: int
    seed: int
    js_divergence_p: float
    jaccard_p: float
    null_js: np.ndarray  # [P] layer-mean JS of the shuffled splits
    null_jaccard: np.ndarray  # [P]

    def to_json(self) -> dict:
        js = percentiles(self.null_js, [50.0, 95.0])
        jac = percentiles(self.null_jaccard, [50.0, 5.0])
        return {
            "test": "permutation",
            "permutations": self.permutations,
            "seed": self.seed,
            "js_divergence_p": self.js_divergence_p,
            "jaccard_p": self.jaccard_p,
            "noise_floor": {"js_divergence": _pair(*js), "jaccard": _pair(*jac)},
        }


def split_indicators(rng: np.random.Generator, n_a: int, n_b: int, permutations: int) -> np.ndarray:
    """``[P, n_a + n_b]`` float32 0/1 rows, each picking a random n_a of the pooled sequences."""
    keys = rng.random((permutations, n_a + n_b))
    chosen = np.argpartition(keys, n_a - 1, axis=1)[:, :n_a] if n_a < n_a + n_b else None
    out = np.zeros((permutations, n_a + n_b), dtype=np.float32)
    if chosen is None:
        out[:] = 1.0
    else:
        np.put_along_axis(out, chosen, 1.0, axis=1)
    return out


def permutation_test(
    a: Profile,
    b: Profile,
    r: int,
    permutations: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
) -> Difference:
    """p-values of the observed JS and Jaccard@r layer means against random splits of A ∪ B.

    p = (1 + #{null at least as extreme}) / (P + 1): large JS and small
    Jaccard are extreme. The observed split is evaluated through the same
    float32 path as the shuffled ones, so rounding never separates them.
    """
    check_options(permutations, DEFAULT_LEVEL)
    check_compatible([a, b])
    m.check_budget(r, a.num_experts, str(a.bundle.path))
    units_a, units_b = resampling_units(a), resampling_units(b)
    n_a, n_b = units_a.count, units_b.count
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    # Row 0 is the observed split (all of A), row 1 all of B (so that row 0 + row 1 is the
    # pool's total through the same float32 path), then the shuffled splits.
    observed = np.concatenate([np.ones(n_a), np.zeros(n_b)]).astype(np.float32)
    pick = np.concatenate(
        [observed[None], 1.0 - observed[None], split_indicators(rng, n_a, n_b, int(permutations))]
    )
    # Sums of the new "A" side over the pool, without concatenating the two tensors.
    sum_x = weighted_sums(pick[:, :n_a], units_a.prob) + weighted_sums(pick[:, n_a:], units_b.prob)
    sum_x = sum_x.reshape(-1, *_shape(a))
    tok_x = pick[:, :n_a].astype(np.float64) @ units_a.tokens
    tok_x += pick[:, n_a:].astype(np.float64) @ units_b.tokens
    total, tok_total = sum_x[0] + sum_x[1], tok_x[0] + tok_x[1]
    sum_x, tok_x = np.delete(sum_x, 1, axis=0), np.delete(tok_x, 1)
    sum_y = total[None] - sum_x  # before sum_x is divided in place
    p_x = divide_rows(sum_x, tok_x)
    p_y = divide_rows(sum_y, tok_total - tok_x)
    js = replicate_layer_means(m.js_divergence(p_x, p_y))
    jac = replicate_layer_means(m.jaccard(m.proxy_mask(p_x, r), m.proxy_mask(p_y, r)))
    observed_js, null_js = js[0], js[1:]
    observed_jac, null_jac = jac[0], jac[1:]
    # A hair of tolerance for float32 rounding: ties count as "as extreme" (conservative).
    tol = 1e-9
    p_js = (1 + int(np.count_nonzero(null_js >= observed_js - tol))) / (permutations + 1)
    p_jac = (1 + int(np.count_nonzero(null_jac <= observed_jac + tol))) / (permutations + 1)
    return Difference(int(permutations), int(seed), p_js, p_jac, null_js, null_jac)
