"""The docs/formats.md §Metrics as pure, vectorised numpy functions over all layers at once.

Every function takes per-layer signatures shaped ``[L, E]`` and returns one
value per layer (shape ``[L]``). A value that is undefined for a layer (for
example Pearson on a constant vector) is ``NaN`` here and becomes JSON
``null`` at the edges (:func:`to_jsonable`). Whole-model figures are means
over layers with NaNs skipped (:func:`layer_mean`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from core.errors import LensError
from core.sample_sums import sum_over_samples

EPS = 1e-12
DEFAULT_TAU = 0.01

UNIVARIATE_KEYS = ("sparsity_pct", "variance", "n_eff", "entropy_bits")
BIVARIATE_KEYS = (
    "js_divergence",
    "jaccard",
    "pearson_energy",
    "retained_mass_a_to_b",
    "retained_mass_b_to_a",
)
#: Retained mass relative to the best attainable top-r mass (docs/formats.md §Relative retained mass). Kept apart
#: from BIVARIATE_KEYS so the paper's five keys keep their place in every output.
RELATIVE_KEYS = ("retained_mass_rel_a_to_b", "retained_mass_rel_b_to_a")
COMPARE_KEYS = BIVARIATE_KEYS + RELATIVE_KEYS


# --------------------------------------------------------------------------- signatures


def signature(
    sums: np.ndarray, token_count: np.ndarray, index: np.ndarray | slice | None = None
) -> np.ndarray:
    """P_l(S) (or E_l(S)) for the samples ``index`` of ``[N, L, E]`` per-sample sums.

    Returns ``[L, E]`` float64; a subset with zero tokens gives all-NaN
    (undefined). The whole set's signature is best taken from the bundle's
    cached ``total`` (:class:`core.engine.Profile` does), which loading formed.
    """
    if index is None:
        index = slice(None)
    total = sum_over_samples(sums[index])
    tokens = int(np.asarray(token_count[index]).sum())
    return divide_by_tokens(total, tokens)


def divide_by_tokens(total: np.ndarray, tokens: int) -> np.ndarray:
    if tokens <= 0:
        return np.full(total.shape, np.nan)
    return total / float(tokens)


# --------------------------------------------------------------------------- univariate


def sparsity_pct(p: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    """Percentage of experts whose mass is below ``tau``, per layer."""
    return 100.0 * np.count_nonzero(p < tau, axis=-1) / p.shape[-1]


def variance(p: np.ndarray) -> np.ndarray:
    """Population variance (ddof 0) of the expert masses, per layer."""
    return np.var(p, axis=-1)


def n_eff(p: np.ndarray) -> np.ndarray:
    """Effective number of experts, 1 / (sum p^2 + eps), per layer."""
    return 1.0 / (np.sum(p * p, axis=-1) + EPS)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits, -sum p log2(p + eps), per layer."""
    return -np.sum(p * np.log2(p + EPS), axis=-1)


def univariate(p: np.ndarray, tau: float = DEFAULT_TAU) -> dict[str, np.ndarray]:
    """All univariate metrics (docs/formats.md §Metrics) for every layer of ``p`` ([L, E])."""
    return {
        "sparsity_pct": sparsity_pct(p, tau),
        "variance": variance(p),
        "n_eff": n_eff(p),
        "entropy_bits": entropy_bits(p),
    }


# --------------------------------------------------------------------------- masks


def check_budget(r: int, num_experts: int, where: str = "") -> None:
    if not 1 <= int(r) <= num_experts:
        prefix = f"{where}: " if where else ""
        raise LensError(
            f"{prefix}r={r} is outside 1..{num_experts} (the number of experts per layer)"
        )


def ranking(scores: np.ndarray) -> np.ndarray:
    """Expert indices by descending score per layer; ties go to the lower index."""
    return np.argsort(-scores, axis=-1, kind="stable")


def proxy_mask(p: np.ndarray, r: int) -> np.ndarray:
    """Boolean ``[..., E]`` mask of the ``r`` highest-mass experts per layer (ties: lower index)."""
    check_budget(r, p.shape[-1])
    if np.isfinite(p).all():
        return _top_r_by_threshold(p, int(r))
    top = ranking(p)[..., :r]
    mask = np.zeros(p.shape, dtype=bool)
    np.put_along_axis(mask, top, True, axis=-1)
    return mask


def _top_r_by_threshold(p: np.ndarray, r: int) -> np.ndarray:
    """The same mask as a stable descending sort's first r, without sorting.

    The r-th largest value v per row comes from a partition (O(E)); every value
    above v is kept, and of the values equal to v the lowest-index ones fill the
    remaining places, which is exactly how the stable sort breaks ties. The
    bootstrap takes hundreds of masks at once, where the sort dominated.
    """
    kth = -np.partition(-p, r - 1, axis=-1)[..., r - 1 : r]
    at_least = p >= kth
    if (np.count_nonzero(at_least, axis=-1) == r).all():  # no tie at the boundary (the rule)
        return at_least
    above = p > kth
    ties = p == kth
    room = r - np.count_nonzero(above, axis=-1, keepdims=True)
    return above | (ties & (np.cumsum(ties, axis=-1) <= room))


def kept_experts(mask: np.ndarray) -> list[list[int]]:
    """Ascending kept expert ids per layer, from a boolean ``[L, E]`` mask."""
    return [np.flatnonzero(row).tolist() for row in mask]


# --------------------------------------------------------------------------- bivariate


def jaccard(mask_a: np.ndarray, mask_b: np.ndarray) -> np.ndarray:
    """|A ∩ B| / |A ∪ B| per layer for boolean ``[L, E]`` masks (NaN where both are empty)."""
    inter = np.count_nonzero(mask_a & mask_b, axis=-1)
    union = np.count_nonzero(mask_a | mask_b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence in bits of p/Σp and q/Σq per layer, in [0, 1]; 0·log 0 = 0.

    The bootstrap evaluates it on ``[R, L, E]`` replicate signatures, so each
    step writes into the arrays it already has (``out=``/``where=``) instead
    of a dozen full-size temporaries; the arithmetic per entry is unchanged.
    """
    p = np.clip(p, 0.0, None)
    q = np.clip(q, 0.0, None)
    sp = p.sum(axis=-1, keepdims=True)
    sq = q.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pn = np.divide(p, sp, out=p)
        qn = np.divide(q, sq, out=q)
        m = pn + qn
        m *= 0.5
        m[~(m > 0)] = 1.0  # where m is not > 0, pn and qn are not > 0 either: the terms are 0
        js = _kl_terms(pn, m).sum(axis=-1)
        js *= 0.5
        js += 0.5 * _kl_terms(qn, m).sum(axis=-1)
    bad = (sp[..., 0] <= 0) | (sq[..., 0] <= 0) | ~np.isfinite(js)
    return np.where(bad, np.nan, np.clip(js, 0.0, 1.0))


def _kl_terms(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """x · log2(x / m) where x > 0, else 0: the terms of KL(x ‖ m)."""
    x = np.broadcast_to(x, np.broadcast_shapes(x.shape, m.shape))  # one p against many q
    positive = x > 0
    out = np.zeros(x.shape, dtype=np.result_type(x, m))
    np.divide(x, m, out=out, where=positive)
    np.log2(out, out=out, where=positive)
    np.multiply(x, out, out=out, where=positive)
    return out


def pearson(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
    """Pearson correlation over experts per layer; NaN where either side is constant.

    Returns ``None`` when either input is missing (the bundle has no energy).
    """
    if x is None or y is None:
        return None
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    sx = np.sqrt(np.sum(xc * xc, axis=-1))
    sy = np.sqrt(np.sum(yc * yc, axis=-1))
    denom = sx * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sum(xc * yc, axis=-1) / denom
    # "Constant" relative to the vector's scale, so float noise in a flat vector is not a signal.
    scale_x = np.max(np.abs(x), axis=-1) * 1e-12
    scale_y = np.max(np.abs(y), axis=-1) * 1e-12
    constant = (
        (sx <= scale_x * math.sqrt(x.shape[-1]))
        | (sy <= scale_y * math.sqrt(y.shape[-1]))
        | (denom == 0)
    )
    return np.where(constant | ~np.isfinite(r), np.nan, np.clip(r, -1.0, 1.0))


def retained_mass(mask: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σ_{e ∈ mask} q_e per layer: how much of q's routing mass a mask keeps."""
    return np.where(mask, q, 0.0).sum(axis=-1)


def best_retained_mass(q: np.ndarray, r: int) -> np.ndarray:
    """Σ of the r largest q_e per layer: the most mass any r-expert mask can keep of q."""
    # Summed through the same mask path as retained_mass, so a mask equal to q's own
    # proxy mask gives a ratio of exactly 1.0 (not 1 ± rounding of another order).
    return retained_mass(proxy_mask(q, r), q)


def retained_mass_rel(mask: np.ndarray, q: np.ndarray, r: int | None = None) -> np.ndarray:
    """Retained mass relative to what is attainable: Σ_{e∈mask} q_e / (best r-mask's Σ q_e).

    The paper's absolute retained mass cannot reach 95 % at small r even for a
    mask calibrated on q itself, because q's own top-r share is below 1. Dividing
    by that share asks the question a user means: how close is this mask to the
    best mask of the same size for q? It is exactly 1.0 for q's own proxy mask
    (the same r largest values are summed in both), NaN where q has no mass.
    With ``r=None`` the size is the mask's own per-layer count (masks built to a
    global budget keep different numbers of experts per layer).
    """
    if r is None:
        best = retained_mass(top_counts_mask(q, np.count_nonzero(mask, axis=-1)), q)
    else:
        best = best_retained_mass(q, r)
    return share_of_best(retained_mass(mask, q), best)


def share_of_best(kept: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``kept / best`` where q has mass to keep, NaN where the best attainable is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(best > 0, kept / np.where(best > 0, best, 1.0), np.nan)


def top_counts_mask(q: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Boolean mask of the ``counts[l]`` largest q_e in each layer (ties: lower index)."""
    order = ranking(q)
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(q.shape[-1]), axis=-1)
    return position < np.asarray(counts)[..., None]


# --------------------------------------------------------------------------- reduction and JSON


def layer_mean(values: np.ndarray | None) -> float | None:
    """Mean over layers with NaNs skipped; ``None`` if nothing is defined."""
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return float(finite.mean())


def to_jsonable(value: float | np.floating | None) -> float | None:
    """A plain float, or ``None`` for missing/NaN/inf values (JSON null)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def per_layer_rows(
    metrics: dict[str, np.ndarray | None], keys: Iterable[str], num_layers: int
) -> list[dict]:
    """``[{"layer": l, key: value, ...}, ...]`` with NaN and missing metrics as None."""
    rows = []
    for layer in range(num_layers):
        row: dict[str, object] = {"layer": layer}
        for key in keys:
            values = metrics.get(key)
            row[key] = None if values is None else to_jsonable(values[layer])
        rows.append(row)
    return rows
