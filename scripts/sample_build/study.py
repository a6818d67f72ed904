"""The predictor study's masks (issue 16): enough masks per evaluated set to tell predictors apart.

For one evaluated set and one budget r (experts per layer) the study evaluates

- every criterion × every source dataset: ``mass`` and :data:`EVAL_CRITERIA` of
  each calibration bundle (12 bundles × 6 criteria = 72 masks), plus ``coverage``
  over all bundles and the calibration-free ``aimer`` when its scores are given;
- :data:`RANDOM_MASKS` uniformly random masks (r experts per layer) — the floor
  every predictor must beat;
- perturbations of the best mask: the evaluated set's own ``mass`` mask (its
  proxy mask, which maximises retained mass on it) with 1, 2 and 4 of its kept
  experts per layer swapped for dropped ones, :data:`PERTURBATIONS` each. These
  are the masks that keep *similar* experts, where the shipped evidence says
  the lens does not order masks; they get ``sources`` of the mask they perturb,
  so ``predict-vs-actual`` counts them in the set's ``same_data`` group.

Everything is seeded from (seed, r, set name), so a rerun writes the same
masks. The ``evaluate`` stage of ``scripts/build_sample_stats.py`` evaluates them
at ``--r`` and ``--study-r2``: these are the shipped ``sample_stats/eval_*.json``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from core.formats.bundle import Bundle
from core.formats.mask import Mask
from core.masks.criteria import AimerScores
from core.masks.make import make_mask

from .settings import EVAL_CRITERIA

RANDOM_MASKS = 8
SWAPS = (1, 2, 4)
PERTURBATIONS = 3
STUDY_CRITERIA = ("mass", *EVAL_CRITERIA)


def study_rng(seed: int, r: int, name: str) -> np.random.Generator:
    """A generator fixed by (seed, r, set name): reruns and other sets do not shift the draws."""
    return np.random.default_rng([seed, r, zlib.crc32(name.encode())])


def random_mask(template: Mask, r: int, rng: np.random.Generator) -> Mask:
    """r experts per layer drawn uniformly without replacement (ids ascending)."""
    layers = [
        sorted(int(e) for e in rng.choice(template.num_experts, size=r, replace=False))
        for _ in range(template.num_layers)
    ]
    return _derived(template, "random", [], layers, {"kind": "per_layer", "r": r}, {})


def perturbed_mask(best: Mask, swaps: int, rng: np.random.Generator) -> Mask:
    """``best`` with ``swaps`` kept experts per layer replaced by as many dropped ones."""
    layers = []
    for kept in best.layers:
        dropped = sorted(set(range(best.num_experts)) - set(kept))
        if swaps > min(len(kept), len(dropped)):
            raise ValueError(
                f"cannot swap {swaps} experts in a layer keeping {len(kept)} of {best.num_experts}"
            )
        out = rng.choice(kept, size=swaps, replace=False)
        into = rng.choice(dropped, size=swaps, replace=False)
        layers.append(sorted((set(kept) - {int(e) for e in out}) | {int(e) for e in into}))
    return _derived(
        best, "perturbed", list(best.sources), layers, best.budget, {"swaps_per_layer": swaps}
    )


def _derived(
    template: Mask, criterion: str, sources: list, layers: list, budget, extra: dict
) -> Mask:
    return Mask(
        model=template.model,
        num_experts=template.num_experts,
        criterion=criterion,
        sources=sources,
        layers=layers,
        top_k=template.top_k,
        budget=budget,
        extra=extra,
    )


def study_masks(
    bundles: Mapping[str, Bundle],
    evaluated: str,
    r: int,
    *,
    seed: int = 0,
    aimer: AimerScores | None = None,
    random_masks: int = RANDOM_MASKS,
    swaps: tuple[int, ...] = SWAPS,
    perturbations: int = PERTURBATIONS,
) -> dict[str, Mask]:
    """{file stem: mask} of the study for the set ``evaluated`` at r experts per layer.

    ``bundles`` maps dataset labels to the calibration bundles (``evaluated``
    among them: its ``mass`` mask is the one perturbed).
    """
    if evaluated not in bundles:
        raise ValueError(f"{evaluated}: no bundle of the evaluated set among the sources")
    out: dict[str, Mask] = {}
    for name, bundle in bundles.items():
        for criterion in STUDY_CRITERIA:
            out[f"r{r}-{name}-{criterion}"] = make_mask(criterion, [bundle], r=r)
    out[f"r{r}-coverage"] = make_mask("coverage", list(bundles.values()), r=r)
    if aimer is not None:
        out[f"r{r}-aimer"] = make_mask("aimer", aimer=aimer, r=r)
    rng = study_rng(seed, r, evaluated)
    best = out[f"r{r}-{evaluated}-mass"]
    for i in range(random_masks):
        out[f"r{r}-random-{i}"] = random_mask(best, r, rng)
    for count in swaps:
        for i in range(perturbations):
            out[f"r{r}-{evaluated}-mass-swap{count}-{i}"] = perturbed_mask(best, count, rng)
    return out
