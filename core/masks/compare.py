"""Masks side by side: how much masks agree, and how much of each dataset they keep.

Given masks (from files, or built from bundles with several criteria) and
calibration datasets (bundles), :func:`compare_masks` returns, per layer and as
whole-model means (over layers, nulls skipped):

- ``jaccard[l, i, j]``: |M_i ∩ M_j| / |M_i ∪ M_j| of masks i and j in layer l;
- ``retained[l, i, d]``: Σ_{e ∈ M_i} P_l(dataset d)[e], the share of dataset
  d's routing mass that mask i keeps (1.0 = nothing d routes to is dropped);
- ``retained_rel[l, i, d]``: the same divided by the best mass any mask with as
  many experts in layer l keeps of d (docs/formats.md §Relative retained mass; 1.0 = as good as d's own
  proxy mask of that size).

Masks may keep different numbers of experts per layer (global budgets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.engine import Profile, check_compatible
from core.errors import LensError
from core.formats.bundle import Bundle
from core.formats.mask import Mask
from core.masks.criteria import AimerScores
from core.masks.make import make_mask
from core.model_names import model_identity


@dataclass(frozen=True)
class MasksComparison:
    masks: list[Mask]
    datasets: list[Profile]
    jaccard: np.ndarray  # [L, M, M]
    retained: np.ndarray  # [L, M, D]
    retained_rel: np.ndarray  # [L, M, D]

    @property
    def names(self) -> list[str]:
        return unique_names([mask.name for mask in self.masks])

    @property
    def dataset_names(self) -> list[str]:
        return unique_names([p.name for p in self.datasets])

    @property
    def num_layers(self) -> int:
        return int(self.jaccard.shape[0])

    @property
    def jaccard_mean(self) -> np.ndarray:
        """``[M, M]`` mean over layers."""
        return _layer_mean(self.jaccard)

    @property
    def retained_mean(self) -> np.ndarray:
        """``[M, D]`` mean over layers."""
        return _layer_mean(self.retained)

    @property
    def retained_rel_mean(self) -> np.ndarray:
        """``[M, D]`` mean over layers."""
        return _layer_mean(self.retained_rel)

    def to_json(self) -> dict:
        return {
            "num_layers": self.num_layers,
            "num_experts": self.masks[0].num_experts,
            "masks": [mask.summary(name) for name, mask in zip(self.names, self.masks)],
            "datasets": [
                {"name": name, **p.bundle.summary()}
                for name, p in zip(self.dataset_names, self.datasets)
            ],
            "jaccard": {"mean": _jsonable(self.jaccard_mean), "layers": _jsonable(self.jaccard)},
            "retained_mass": {
                "mean": _jsonable(self.retained_mean),
                "layers": _jsonable(self.retained),
            },
            "retained_mass_rel": {
                "mean": _jsonable(self.retained_rel_mean),
                "layers": _jsonable(self.retained_rel),
            },
        }


def compare_masks(
    masks: Sequence[Mask], datasets: Sequence[Profile | Bundle] = ()
) -> MasksComparison:
    """Pairwise Jaccard of ``masks`` and the routing mass each keeps of each dataset."""
    if not masks:
        raise LensError("nothing to compare: give at least one mask")
    profiles = [d if isinstance(d, Profile) else Profile(d) for d in datasets]
    first = masks[0]
    for mask in masks[1:]:
        if (mask.num_layers, mask.num_experts) != (first.num_layers, first.num_experts):
            raise LensError(
                f"{_where(mask)}: has L={mask.num_layers}, E={mask.num_experts} but "
                f"{_where(first)} has L={first.num_layers}, E={first.num_experts}; "
                "masks must be for the same model"
            )
    if len(profiles) > 1:
        check_compatible(profiles)
    _check_models(masks, profiles)
    for p in profiles:
        if (p.num_layers, p.num_experts) != (first.num_layers, first.num_experts):
            raise LensError(
                f"{p.bundle.path}: has L={p.num_layers}, E={p.num_experts} but the masks have "
                f"L={first.num_layers}, E={first.num_experts}; bundles must come from the masks' model"
            )
    keep = np.stack([mask.as_bool() for mask in masks])  # [M, L, E]
    jac = np.stack([m.jaccard(keep[i][None], keep) for i in range(len(masks))])  # [M, M, L]
    if profiles:
        probs = np.stack([p.prob for p in profiles])  # [D, L, E]
        kept = np.stack([m.retained_mass(keep[i][None], probs) for i in range(len(masks))])
        rel = np.stack([m.retained_mass_rel(keep[i][None], probs) for i in range(len(masks))])
    else:
        kept = np.zeros((len(masks), 0, first.num_layers))
        rel = kept.copy()
    return MasksComparison(
        list(masks),
        profiles,
        jaccard=np.transpose(jac, (2, 0, 1)),
        retained=np.transpose(kept, (2, 0, 1)),
        retained_rel=np.transpose(rel, (2, 0, 1)),
    )


def _check_models(masks: Sequence[Mask], profiles: Sequence[Profile]) -> None:
    """Every mask and bundle that names its model must name the same one."""
    named = [(_where(mk), mk.model) for mk in masks] + [
        (str(p.bundle.path), p.bundle.model) for p in profiles
    ]
    named = [(where, model) for where, model in named if model]
    for where, model in named[1:]:
        if model_identity(model) != model_identity(named[0][1]):
            raise LensError(
                f"{where}: is for model {model!r} but {named[0][0]} is for {named[0][1]!r}; "
                "masks and bundles must be of the same model"
            )


def masks_for_criteria(
    criteria: Sequence[str],
    bundles: Sequence[Bundle],
    *,
    r: int | None = None,
    budget: int | None = None,
    aimer: AimerScores | None = None,
) -> list[Mask]:
    """One mask per (bundle, criterion); ``coverage`` gives one mask over all bundles and
    ``aimer`` one mask from the checkpoint's ``aimer`` scores."""
    masks: list[Mask] = []
    for criterion in criteria:
        if criterion == "aimer":
            masks.append(make_mask("aimer", r=r, budget=budget, aimer=aimer))
        elif criterion == "coverage":
            masks.append(make_mask("coverage", bundles, r=r, budget=budget))
        else:
            masks.extend(make_mask(criterion, [b], r=r, budget=budget) for b in bundles)
    return masks


def unique_names(names: list[str]) -> list[str]:
    """Names with repeats disambiguated as ``name#2``, ``name#3``…"""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _where(mask: Mask) -> str:
    return str(mask.path) if mask.path is not None else mask.name


def _layer_mean(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape[1:], np.nan)
    for index in np.ndindex(*values.shape[1:]):
        mean = m.layer_mean(values[(slice(None), *index)])
        out[index] = np.nan if mean is None else mean
    return out


def _jsonable(array: np.ndarray) -> list:
    if array.ndim == 0:
        return m.to_jsonable(array)  # type: ignore[return-value]
    return [_jsonable(row) for row in array]
