"""Per-sample diagnostics of one bundle: which calibration sequences stand out or matter.

A bundle keeps per-sample sums ``prob_sum[i, l, e]`` with ``token_count[i]``
tokens, so every question below is answered from the bundle alone:

- **divergence**: sample i's own signature p_i = prob_sum[i] / T_i against the
  dataset signature P = Σ prob_sum / Σ T, as the Jensen–Shannon divergence in
  bits per layer (:func:`core.metrics.js_divergence`'s definition), reported as
  the mean and the maximum over layers.
- **influence**: the exact leave-one-out effect on the top-r proxy mask. Without
  sample i the signature is P_{-i} = (Σ prob_sum − prob_sum[i]) / (T − T_i);
  ``mask_changes`` is the number of experts, summed over layers, that leave the
  mask (equally, that enter it) when the mask is taken on P_{-i} instead of P.
  It is ``None`` when sample i holds every token (P_{-i} is undefined).
- **near duplicates**: samples whose signatures are within ``dup_js`` bits of
  each other (JS mean over layers), joined into groups by union-find.

Speed (L=36, E=128, N=20,000 in seconds, see ``benchmarks/bench_samples.py``):
removing one sample only lowers scores, so the mask can change only where the
weakest kept expert's new score falls to or below the strongest dropped
expert's new score. One pass computes those two numbers for every (sample,
layer); only the flagged rows are ranked again, with the same stable sort as
:func:`core.metrics.proxy_mask` (ties to the lower index). Near-duplicate
candidates come from a sort-and-sweep over a contractive projection (see
:func:`duplicate_groups`), never from all N² pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.engine import LayerDistribution, Profile
from core.errors import LensError
from core.formats.bundle import Bundle
from core.ordering import sort_order

#: Default near-duplicate threshold: JS (bits, mean over layers) between two samples.
DEFAULT_DUPLICATE_JS = 0.002


#: Most candidate pairs the duplicate search verifies before refusing (work bound).
MAX_DUPLICATE_PAIRS = 20_000_000
#: Columns a sample table can be sorted by.
SORT_COLUMNS = ("index", "example_id", "tokens", "js_mean", "js_max", "influence")


@dataclass(frozen=True)
class SampleReport:
    """The per-sample table of one bundle at budget r."""

    bundle: Bundle
    r: int
    dup_js: float
    tokens: np.ndarray  # [N] int
    js_layers: np.ndarray  # [N, L] bits, NaN for a sample without tokens
    mask_changes: np.ndarray  # [N] int, -1 where undefined
    groups: np.ndarray  # [N] int group id, -1 for a sample in no group

    @property
    def js_mean(self) -> np.ndarray:
        return _nan_reduce(self.js_layers, np.mean)

    @property
    def js_max(self) -> np.ndarray:
        return _nan_reduce(self.js_layers, np.max)

    def order(self, column: str = "index", descending: bool | None = None) -> np.ndarray:
        """Sample indices sorted by ``column`` (NaNs last; ties by index).

        Diagnostic columns (JS, influence, tokens) sort largest first by default,
        the identifiers ascending.
        """
        keys = {
            "index": np.arange(len(self.tokens), dtype=np.float64),
            "example_id": np.asarray(self.bundle.example_ids, dtype=np.float64),
            "tokens": self.tokens.astype(np.float64),
            "js_mean": self.js_mean,
            "js_max": self.js_max,
            "influence": np.where(self.mask_changes < 0, np.nan, self.mask_changes),
        }
        if column not in keys:
            raise LensError(f"unknown sort column {column!r} (use {', '.join(SORT_COLUMNS)})")
        if descending is None:
            descending = column not in ("index", "example_id")
        return sort_order(keys[column], descending)

    def to_json(self) -> dict:
        js_mean, js_max = self.js_mean, self.js_max
        ids = np.asarray(self.bundle.example_ids)
        rows = []
        for i in range(len(self.tokens)):
            rows.append(
                {
                    "index": i,
                    "example_id": int(ids[i]),
                    "tokens": int(self.tokens[i]),
                    "js_divergence_mean": m.to_jsonable(js_mean[i]),
                    "js_divergence_max": m.to_jsonable(js_max[i]),
                    "mask_changes": None if self.mask_changes[i] < 0 else int(self.mask_changes[i]),
                    "duplicate_group": None if self.groups[i] < 0 else int(self.groups[i]),
                }
            )
        return {"bundle": self.bundle.summary(), "r": self.r, "samples": rows}


def _nan_reduce(values: np.ndarray, reduce) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    ok = np.isfinite(values).all(axis=1)
    if ok.any():
        out[ok] = reduce(values[ok], axis=1)
    return out


def analyse(bundle: Bundle, r: int, dup_js: float = DEFAULT_DUPLICATE_JS) -> SampleReport:
    """Divergence, leave-one-out influence and near-duplicate groups of every sample."""
    m.check_budget(r, bundle.num_experts, str(bundle.path))
    if dup_js < 0:
        raise LensError(f"the duplicate threshold must be ≥ 0 bits (got {dup_js})")
    prob_sum = bundle.prob_sum
    tokens = np.asarray(bundle.token_count, dtype=np.int64)
    total = bundle.total("prob_sum")  # [L, E], formed on load
    signature = m.divide_by_tokens(total, int(tokens.sum()))
    js_layers = sample_js(prob_sum, tokens, signature)
    changes = loo_mask_changes(prob_sum, tokens, total, r)
    groups = duplicate_groups(prob_sum, tokens, dup_js)
    return SampleReport(bundle, int(r), float(dup_js), tokens, js_layers, changes, groups)


# --------------------------------------------------------------------------- divergence


def _neg_entropy_bits(p: np.ndarray) -> np.ndarray:
    """Σ_e p·log2(p) over the last axis (0·log 0 = 0: log2(0 + 1e-30) is finite, times 0)."""
    logs = p + np.float32(1e-30)
    np.log2(logs, out=logs)
    logs *= p
    return logs.sum(axis=-1)


def sample_js(prob_sum: np.ndarray, tokens: np.ndarray, signature: np.ndarray) -> np.ndarray:
    """JS(p_i, P) in bits for every sample and layer, ``[N, L]``.

    The value :func:`core.metrics.js_divergence` defines, computed as
    JS = H(½(p+q)) − ½H(p) − ½H(q) on the normalised distributions: two
    logarithms per element instead of four. Elements are float32 in blocks of
    16 samples that stay in cache (the float32 rounding of the entropies is
    below 1e-5 bits); that is what keeps N = 20,000 × L·E = 4,608 well under a
    second. NaN for a sample with no tokens or no mass in a layer.
    """
    n, num_layers, num_experts = prob_sum.shape
    q = np.clip(np.asarray(signature, dtype=np.float64), 0.0, None)
    q_total = q.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = (q / q_total).astype(np.float32)
    neg_h_q = _neg_entropy_bits(q).astype(np.float64)  # [L]
    out = np.full((n, num_layers), np.nan)
    step = 16
    with np.errstate(invalid="ignore", divide="ignore"):
        for start in range(0, n, step):
            stop = min(n, start + step)
            p = np.array(prob_sum[start:stop], dtype=np.float32)
            np.maximum(p, 0.0, out=p)
            sums = p.sum(axis=-1)  # [B, L]
            p *= (1.0 / sums)[..., None]
            neg_h_p = _neg_entropy_bits(p)
            p += q[None]
            p *= np.float32(0.5)
            neg_h_m = _neg_entropy_bits(p)
            js = 0.5 * neg_h_p.astype(np.float64) + 0.5 * neg_h_q[None] - neg_h_m
            bad = (sums <= 0) | (q_total[None, :, 0] <= 0) | ~np.isfinite(js)
            bad |= (tokens[start:stop] <= 0)[:, None]
            out[start:stop] = np.where(bad, np.nan, np.clip(js, 0.0, 1.0))
    return out


# --------------------------------------------------------------------------- influence


def loo_mask_changes(
    prob_sum: np.ndarray, tokens: np.ndarray, total: np.ndarray, r: int
) -> np.ndarray:
    """Experts (summed over layers) that leave the top-r mask when sample i is left out.

    Exact: equals ``proxy_mask(P_{-i}, r)`` compared with ``proxy_mask(P, r)`` for
    every i, where P_{-i} = (total − prob_sum[i]) / (T − T_i) in float64. Scores
    only fall when a sample is removed, so a layer's mask can change only if
    the new score of the weakest kept expert comes near or below the new score
    of the strongest dropped one. That screen runs on every (sample, layer) in
    float32 with a safety margin far above float32 rounding; only the rows it
    flags are scored again in float64 and re-ranked with the stable sort of
    :func:`core.metrics.proxy_mask` (ties to the lower index). -1 marks a
    sample whose removal leaves no tokens.
    """
    n, num_layers, num_experts = prob_sum.shape
    total_tokens = int(tokens.sum())
    base = m.proxy_mask(m.divide_by_tokens(total, total_tokens), r)  # [L, E]
    out = np.zeros(n, dtype=np.int64)
    out[tokens >= total_tokens] = -1
    if r == num_experts:
        return out
    # Experts reordered per layer so the kept ones come first: min/max are plain slices.
    perm = np.argsort(~base, axis=-1, kind="stable")  # [L, E]
    total_perm = np.take_along_axis(total, perm, axis=-1).astype(np.float32)
    flat_perm = (perm + num_experts * np.arange(num_layers)[:, None]).ravel()
    margin = np.float32(1e-5) * total.max(axis=-1).astype(np.float32)[None]  # [1, L]
    step = 64
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = np.asarray(prob_sum[start:stop], dtype=np.float32).reshape(stop - start, -1)
        scores = total_perm[None] - block[:, flat_perm].reshape(stop - start, num_layers, -1)
        weakest_in = scores[..., :r].min(axis=-1)  # [B, L]
        strongest_out = scores[..., r:].max(axis=-1)
        flagged = np.argwhere(strongest_out >= weakest_in - margin)
        flagged = flagged[out[start + flagged[:, 0]] >= 0]
        if len(flagged) == 0:
            continue
        rows_i, rows_l = start + flagged[:, 0], flagged[:, 1]
        rest = (total_tokens - tokens[rows_i]).astype(np.float64)
        exact = (total[rows_l] - np.asarray(prob_sum[rows_i, rows_l], dtype=np.float64)) / rest[
            :, None
        ]
        top = m.ranking(exact)[:, :r]
        kept_before = np.take_along_axis(base[rows_l], top, axis=-1)
        np.add.at(out, rows_i, r - kept_before.sum(axis=-1))
    return out


# --------------------------------------------------------------------------- duplicates

#: Exact all-pairs search up to this many N²/2 · L·E multiply-adds; locality-sensitive hashing above.
EXACT_PAIR_WORK = 2_000_000_000
#: Hash tables and projections per table of the locality-sensitive search.
LSH_TABLES, LSH_WIDTH = 8, 5


def _sqrt_signatures(prob_sum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """√(p_i) per layer, flattened to ``[len(rows), L·E]`` float32 (each layer a unit vector)."""
    p = np.array(prob_sum[rows], dtype=np.float32)
    np.maximum(p, 0.0, out=p)
    sums = p.sum(axis=-1, keepdims=True)
    p *= np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0)
    np.sqrt(p, out=p)
    return p.reshape(len(rows), -1)


def pair_js_mean(prob_sum: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Mean over layers of JS(p_i, p_j) in bits for index pairs, float64."""
    out = np.empty(len(i))
    for start in range(0, len(i), 256):
        a = np.clip(np.asarray(prob_sum[i[start : start + 256]], dtype=np.float64), 0, None)
        b = np.clip(np.asarray(prob_sum[j[start : start + 256]], dtype=np.float64), 0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            a /= a.sum(axis=-1, keepdims=True)
            b /= b.sum(axis=-1, keepdims=True)
            mid = 0.5 * (a + b)
            terms = [
                np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0) for x in (a, b, mid)
            ]
        js = 0.5 * terms[0].sum(-1) + 0.5 * terms[1].sum(-1) - terms[2].sum(-1)
        out[start : start + 256] = np.clip(js, 0.0, 1.0).mean(axis=-1)
    return out


def duplicate_groups(
    prob_sum: np.ndarray,
    tokens: np.ndarray,
    threshold: float = DEFAULT_DUPLICATE_JS,
    max_pairs: int = MAX_DUPLICATE_PAIRS,
) -> np.ndarray:
    """Group ids (0, 1, … in order of first member) of near-duplicate samples; -1 for the rest.

    Two samples are near duplicates when the JS divergence of their signatures,
    averaged over layers, is at most ``threshold`` bits; groups are the
    connected components (union-find) of that relation. Samples without tokens
    are in no group.

    Every pair reported is checked with the exact JS. Candidates come from a
    bound: per expert, JS in bits ≥ ½(√p − √q)² (the ratio of the two summands
    is smallest, ln 2 / 2 in nats, where one side is 0), so near duplicates
    have a summed squared Hellinger distance ‖√p_i − √p_j‖² ≤ 2·L·threshold
    over the flattened layers. Small bundles (N²/2·L·E ≤ ``EXACT_PAIR_WORK``)
    test that bound on every pair, so nothing is missed. Larger ones find the
    candidates by locality-sensitive hashing (``LSH_TABLES`` tables of
    ``LSH_WIDTH`` sparse sign projections, cells 4× the bound radius, seed 0),
    which finds a pair right at the threshold with probability ≈ 0.96 and
    closer pairs almost surely; buckets holding more than ``max_pairs`` pairs
    in total (a threshold far too loose for the data) are refused.
    """
    n, num_layers, num_experts = prob_sum.shape
    groups = np.full(n, -1, dtype=np.int64)
    valid = np.flatnonzero(np.asarray(tokens) > 0)
    if len(valid) < 2:
        return groups
    radius2 = 2.0 * num_layers * float(threshold) * (1 + 1e-6) + 1e-9
    if len(valid) ** 2 / 2 * num_layers * num_experts <= EXACT_PAIR_WORK:
        x = _sqrt_signatures(prob_sum, valid).astype(np.float64)
        a, b = _all_close_pairs(x, (x * x).sum(axis=1), radius2)
    else:
        a, b = _hashed_pairs(prob_sum, valid, radius2, max_pairs, threshold)
    if len(a):
        # Float64 Hellinger distance removes the float32 candidates the bound excludes.
        a, b = _hellinger_filter(prob_sum, valid, a, b, radius2)
    if len(a):
        dup = pair_js_mean(prob_sum, valid[a], valid[b]) <= threshold
        a, b = valid[a[dup]], valid[b[dup]]
    return _components(n, a, b)


def _all_close_pairs(
    x: np.ndarray, norms: np.ndarray, radius2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair i < j whose squared distance (float32 Gram, with slack) is within radius2."""
    found_a, found_b = [], []
    slack = 1e-4 * float(norms.max()) + 1e-6
    for start in range(0, len(x), 1024):
        gram = x[start : start + 1024] @ x.T
        dist = norms[start : start + 1024, None] + norms[None] - 2 * gram
        ii, jj = np.nonzero(dist <= radius2 + slack)
        ii += start
        keep = ii < jj
        found_a.append(ii[keep])
        found_b.append(jj[keep])
    return np.concatenate(found_a), np.concatenate(found_b)


def _hashed_pairs(
    prob_sum: np.ndarray, valid: np.ndarray, radius2: float, max_pairs: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (positions in ``valid``, i < j) sharing a cell in at least one table."""
    rng = np.random.default_rng(0)
    width = 4.0 * float(np.sqrt(radius2))
    # A sparse sign projection: the L·E coordinates are split at random into K parts and
    # each projection is a ±1 sum over its part, scaled so that its variance is the
    # pair's squared distance (as a Gaussian projection's would be) at O(N·L·E) cost.
    dims, k = prob_sum.shape[1] * prob_sum.shape[2], LSH_TABLES * LSH_WIDTH
    # (Fewer coordinates than projections: each coordinate serves several parts.)
    perm = np.concatenate([rng.permutation(dims) for _ in range(-(-k // dims))])
    bounds = np.linspace(0, len(perm), k + 1).astype(np.int64)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), len(perm))
    scale = np.sqrt(dims / np.diff(bounds)).astype(np.float32)
    proj = np.empty((len(valid), k))
    for start in range(0, len(valid), 64):
        block = _sqrt_signatures(prob_sum, valid[start : start + 64])[:, perm]
        block *= signs
        proj[start : start + 64] = np.add.reduceat(block, bounds[:-1], axis=1) * scale
    proj /= width
    proj += rng.random(k)[None]
    cells = np.floor(proj).astype(np.int64)
    keys: list[np.ndarray] = []
    swept = 0
    for table in range(LSH_TABLES):
        cols = cells[:, table * LSH_WIDTH : (table + 1) * LSH_WIDTH]
        order = np.lexsort(cols.T[::-1])
        sorted_cols = cols[order]
        new_run = np.ones(len(order), dtype=bool)
        new_run[1:] = (sorted_cols[1:] != sorted_cols[:-1]).any(axis=1)
        run_start = np.flatnonzero(new_run)
        run_len = np.diff(np.append(run_start, len(order)))
        swept += int((run_len * (run_len - 1) // 2).sum())
        if swept > max_pairs:
            raise LensError(
                f"duplicate threshold {threshold:g} bits is too loose for these samples "
                f"(over {max_pairs:,} candidate pairs); choose a smaller one"
            )
        # Pair every position with each later position of its run, all runs at once.
        run_end = np.repeat(run_start + run_len, run_len)
        later = run_end - np.arange(len(order)) - 1
        left = np.repeat(np.arange(len(order)), later)
        offset = np.arange(len(left)) - np.repeat(np.cumsum(later) - later, later)
        i, j = order[left], order[left + 1 + offset]
        keys.append(np.minimum(i, j) * len(proj) + np.maximum(i, j))
    if not keys:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    unique = np.unique(np.concatenate(keys))
    a, b = unique // len(proj), unique % len(proj)
    # The projections also estimate the distance (Johnson–Lindenstrauss): a pair whose
    # estimate is 4× the bound is dropped (a χ²₂₄ tail below 1e-9 for a pair within it).
    estimate = ((proj[a] - proj[b]) ** 2).sum(axis=1) * width**2 / proj.shape[1]
    keep = estimate <= 4.0 * radius2
    return a[keep], b[keep]


def _hellinger_filter(
    prob_sum: np.ndarray, valid: np.ndarray, a: np.ndarray, b: np.ndarray, radius2: float
) -> tuple[np.ndarray, np.ndarray]:
    keep = np.zeros(len(a), dtype=bool)
    for start in range(0, len(a), 256):
        sa = _sqrt_signatures(prob_sum, valid[a[start : start + 256]]).astype(np.float64)
        sb = _sqrt_signatures(prob_sum, valid[b[start : start + 256]]).astype(np.float64)
        keep[start : start + 256] = ((sa - sb) ** 2).sum(axis=1) <= radius2 * (1 + 1e-3)
    return a[keep], b[keep]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union-find over the pairs; groups numbered by their first (lowest-index) member."""
    parent = np.arange(n)

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for x_, y_ in zip(a.tolist(), b.tolist()):
        rx, ry = find(x_), find(y_)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    groups = np.full(n, -1, dtype=np.int64)
    if len(a) == 0:
        return groups
    roots = np.array([find(i) for i in range(n)])
    sizes = np.bincount(roots, minlength=n)
    numbering: dict[int, int] = {}
    for i in np.flatnonzero(sizes[roots] > 1).tolist():
        groups[i] = numbering.setdefault(int(roots[i]), len(numbering))
    return groups


# --------------------------------------------------------------------------- one sample


def sample_layer(profile: Profile, index: int, layer: int, r: int) -> LayerDistribution:
    """Sample ``index``'s own distribution p_i,l (up) against the dataset's P_l (down).

    The Samples view plots it: with both top-r masks marked, it shows which
    experts a sample pulls towards and whether it would keep the dataset's
    mask on its own. ``prob_a`` is p_i,l = prob_sum[i, l] / T_i (zeros for a
    sample without tokens), ``prob_b`` the dataset signature P_l.
    """
    bundle = profile.bundle
    if not 0 <= int(index) < bundle.num_samples:
        raise LensError(f"{bundle.path}: no sample {index} (0..{bundle.num_samples - 1})")
    if not 0 <= int(layer) < bundle.num_layers:
        raise LensError(f"{bundle.path}: layer {layer} is outside 0..{bundle.num_layers - 1}")
    m.check_budget(r, bundle.num_experts, str(bundle.path))
    tokens = int(bundle.token_count[int(index)])
    sums = np.asarray(bundle.prob_sum[int(index), int(layer)], dtype=np.float64)
    own = m.divide_by_tokens(sums, tokens) if tokens > 0 else np.zeros_like(sums)
    dataset = profile.prob[int(layer)].copy()
    return LayerDistribution(
        layer=int(layer),
        r=int(r),
        prob_a=own,
        prob_b=dataset,
        kept_a=m.proxy_mask(own[None], r)[0],
        kept_b=profile.mask(r)[int(layer)].copy(),
    )
