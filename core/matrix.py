"""N-way comparison: every pair of k bundles at once, as k × k matrices.

Cells hold whole-model means (over layers, nulls skipped). JS divergence and
Jaccard are symmetric; retained mass is not: ``retained_mass[i][j]`` is how
much of bundle j's routing mass the mask calibrated on bundle i keeps, and
``retained_mass_rel[i][j]`` the same as a share of the best top-r mass attainable
on bundle j (docs/formats.md §Relative retained mass; 1.0 on the diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.engine import Profile, check_compatible
from core.errors import LensError

MATRIX_KEYS = ("js_divergence", "jaccard", "retained_mass")


@dataclass(frozen=True)
class Matrix:
    profiles: list[Profile]
    r: int
    values: dict[str, np.ndarray]  # key -> [k, k], NaN where undefined

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def to_json(self) -> dict:
        return {
            "bundles": [p.bundle.summary() for p in self.profiles],
            "names": self.names,
            "r": self.r,
            **{
                key: [[m.to_jsonable(v) for v in row] for row in array]
                for key, array in self.values.items()
            },
        }


def matrix(profiles: list[Profile], r: int) -> Matrix:
    if len(profiles) < 2:
        raise LensError("the N-way comparison needs at least two bundles")
    check_compatible(profiles)
    k = len(profiles)
    probs = np.stack([p.prob for p in profiles])  # [k, L, E]
    masks = np.stack([p.mask(r) for p in profiles])  # [k, L, E]
    js = np.full((k, k), np.nan)
    jac = np.full((k, k), np.nan)
    kept = np.full((k, k), np.nan)
    rel = np.full((k, k), np.nan)
    for i in range(k):
        js[i] = [_mean_or_nan(v) for v in m.js_divergence(probs[i][None], probs)]
        jac[i] = [_mean_or_nan(v) for v in m.jaccard(masks[i][None], masks)]
        kept[i] = [_mean_or_nan(v) for v in m.retained_mass(masks[i][None], probs)]
        rel[i] = [_mean_or_nan(v) for v in m.retained_mass_rel(masks[i][None], probs, r)]
    values = {"js_divergence": js, "jaccard": jac, "retained_mass": kept, "retained_mass_rel": rel}
    return Matrix(list(profiles), int(r), values)


def _mean_or_nan(values: np.ndarray) -> float:
    mean = m.layer_mean(values)
    return np.nan if mean is None else mean
