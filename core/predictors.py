"""Predictors of a mask's loss increase, from the evaluated data's bundle alone.

Each predictor scores a keep-mask K (``[L, E]`` bool) against the bundle of
the data D the mask is evaluated on; higher = the lens expects less damage.
The equations (docs/formats.md §Predictors):

- ``retained_mass`` = mean_l Σ_{e∈K_l} P_l(D)[e], the paper's M_ret;
  ``retained_mass_min`` = min_l of the same (the worst layer);
- ``retained_mass_rel`` = mean_l of it divided by the best mass any mask of
  the same size keeps of D in that layer;
- ``retained_energy``, ``retained_reap``, ``retained_topk`` (retained
  *contribution*) = mean_l Σ_{e∈K_l} S_l[e] / Σ_e S_l[e] with S_l[e] the
  whole-dataset sum Σ_n of ``energy_sum`` (Σ w²‖y‖²), ``reap_sum`` (Σ w‖y‖)
  or ``topk_count`` (routing slots): the share of what the experts actually
  contributed, not of router probability, that the kept experts carried;
- ``topk_intact`` (this project's own): the estimated share of tokens whose
  whole top-k survives, mean over layers,
  ``mean_l Σ_n T_n · s_{n,l}^k / Σ_n T_n`` with
  ``s_{n,l} = Σ_{e∈K_l} topk_count[n,l,e] / Σ_e topk_count[n,l,e]``.
  A token is untouched in layer l only when none of its k chosen experts is
  dropped; losing one of k slots already changes its output, so the damage is
  closer to "token hit at all" than to "slots lost". Slot shares are linear in
  the dropped slots and miss that; s^k is the chance that k slots drawn
  independently from the sample's slot distribution all survive. Computing it
  per sample and token-weighting keeps the fact that dropped experts are
  concentrated in some samples (mean of s^k ≥ (mean s)^k). The independence of
  a token's k slots within a sample is the approximation (bundles hold no
  co-occurrence of experts in one token's top-k).

A predictor whose statistic the bundle lacks (an old bundle without
``energy_sum``, a bundle without ``top_k``) is None, never an error; so is a
layer where D has nothing to share (skipped in the mean). numpy only.
"""

from __future__ import annotations

import numpy as np

from core import metrics as m
from core.engine import Profile

#: Predictor names in report order; the first is the paper's.
PREDICTORS = (
    "retained_mass",
    "retained_mass_min",
    "retained_mass_rel",
    "retained_energy",
    "retained_reap",
    "retained_topk",
    "topk_intact",
)

#: Contribution predictors and the bundle tensor each shares out.
CONTRIBUTIONS = {
    "retained_energy": "energy_sum",
    "retained_reap": "reap_sum",
    "retained_topk": "topk_count",
}


def predictor_values(keep: np.ndarray, profile: Profile) -> dict[str, float | None]:
    """Every predictor of :data:`PREDICTORS` for the keep-mask ``keep`` on ``profile``'s data."""
    retained = m.retained_mass(keep, profile.prob)
    finite = retained[np.isfinite(retained)]
    values: dict[str, float | None] = {
        "retained_mass": m.layer_mean(retained),
        "retained_mass_min": float(finite.min()) if finite.size else None,
        "retained_mass_rel": m.layer_mean(m.retained_mass_rel(keep, profile.prob)),
    }
    for name, tensor in CONTRIBUTIONS.items():
        totals = _dataset_sums(profile, tensor)
        values[name] = None if totals is None else m.layer_mean(_kept_share(keep, totals))
    values["topk_intact"] = topk_intact(keep, profile)
    return values


def _dataset_sums(profile: Profile, tensor: str) -> np.ndarray | None:
    """Σ_n of a per-sample ``[N, L, E]`` tensor in float64 (the bundle caches it); None if absent."""

    return profile.bundle.total(tensor) if profile.bundle.has(tensor) else None


def _kept_share(keep: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per layer Σ_{e kept} totals / Σ_e totals; NaN for a layer with nothing to share."""
    whole = totals.sum(axis=-1)
    kept = np.where(keep, totals, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(whole > 0, kept / np.where(whole > 0, whole, 1.0), np.nan)


def topk_intact(keep: np.ndarray, profile: Profile) -> float | None:
    """Estimated share of tokens whose whole top-k survives the mask (mean over layers)."""
    counts = profile.bundle.get("topk_count")
    k = profile.bundle.top_k
    if counts is None or not k:
        return None
    counts = np.asarray(counts, dtype=np.float64)  # [N, L, E]
    tokens = np.asarray(profile.bundle.token_count, dtype=np.float64)  # [N]
    slots = counts.sum(axis=-1)  # [N, L]
    kept = np.where(keep[None], counts, 0.0).sum(axis=-1)
    has = slots > 0
    share = np.where(has, kept / np.where(has, slots, 1.0), 0.0)
    weight = np.where(has, tokens[:, None], 0.0)  # [N, L]
    total = weight.sum(axis=0)  # [L]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_layer = np.where(
            total > 0, (weight * share**k).sum(axis=0) / np.where(total > 0, total, 1.0), np.nan
        )
    return m.layer_mean(per_layer)
