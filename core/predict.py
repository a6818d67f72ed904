"""Predicted vs actual: did the lens's numbers predict what pruning did?

For every mask of an evaluation (``lens evaluate``) this pairs what the lens
predicted from the evaluation data's bundle, without running the model,

- ``retained_mass``: Σ_{e kept} P_l(D)[e] of the evaluation data D, mean over
  layers (the paper's M_ret of the mask on D; ``retained_mass_min`` is the
  worst layer); ``retained_mass_rel`` divides each layer's value by the best
  mass a mask of the same size keeps of D (docs/formats.md §Relative retained mass);
- ``jaccard``: mean over layers of the Jaccard overlap of the mask with a
  reference mask — by default D's own proxy mask M_l(D; r_l) with the same
  number of experts per layer (so 1.0 = the mask is what calibrating on D
  itself would keep), or a fixed mask the user names;

with what was measured: ``loss_increase`` (and top-1 agreement). The rank
correlation (Spearman, average ranks for ties) between prediction and
measurement says whether the lens ordered the masks right — the check the
paper ran by hand. Higher retained mass should go with a smaller loss
increase, so a working lens shows a *negative* ρ.

Beyond those two columns every mask row carries all the predictors of
:mod:`core.predictors`, and each evaluation gets, per predictor, ρ with a
bootstrap interval over masks and a permutation p-value
(:mod:`core.rank_tests`), over all its masks and within groups
(:func:`mask_groups`): the masks calibrated on the evaluated data's own group
("same_data") and the masks of one criterion ("criterion:NAME").

numpy only; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import metrics as m
from core.engine import Profile
from core.errors import LensError
from core.formats.evaluation import Evaluation, MaskResult
from core.formats.mask import Mask
from core.predictors import PREDICTORS, predictor_values
from core.rank_tests import (
    DEFAULT_LEVEL,
    DEFAULT_PERMUTATIONS,
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    MIN_POINTS,
    RankTest,
    rank_test,
)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of ``values``, ties sharing the mean of the ranks they span."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's ρ: the Pearson correlation of average ranks.

    ``None`` with fewer than :data:`MIN_POINTS` pairs, with a missing value,
    or when either side is constant (no ranking to compare).
    """
    if len(x) != len(y):
        raise ValueError("spearman needs two sequences of the same length")
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if len(xs) < MIN_POINTS or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        return None
    rx = average_ranks(xs) - (len(xs) + 1) / 2.0
    ry = average_ranks(ys) - (len(ys) + 1) / 2.0
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    if denom == 0:
        return None
    return float(np.clip((rx * ry).sum() / denom, -1.0, 1.0))


@dataclass(frozen=True)
class Point:
    """One mask on one evaluation dataset: what the lens predicted, what was measured."""

    evaluation: str  # evaluation name (file stem)
    dataset: str
    bundle: str  # path of the bundle the prediction came from
    mask: str
    criterion: str
    kept: int  # experts kept in total
    retained_mass: float | None  # mean over layers
    retained_mass_min: float | None  # worst layer
    jaccard: float | None  # mean over layers, to the reference
    loss: float
    loss_increase: float
    top1_agreement: float
    retained_mass_rel: float | None = None  # mean over layers, relative to the attainable
    predictors: dict[str, float | None] = field(default_factory=dict)  # core.predictors

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["predictors"] = dict(self.predictors)
        return out


@dataclass(frozen=True)
class PredictorTest:
    """One predictor on one evaluation: ρ vs loss increase over all masks and within groups."""

    name: str
    overall: RankTest
    groups: dict[str, RankTest]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            **self.overall.to_json(),
            "groups": {group: test.to_json() for group, test in self.groups.items()},
        }


@dataclass(frozen=True)
class EvaluationTests:
    """The predictor tests of one evaluation (its masks against its data's bundle)."""

    evaluation: str
    dataset: str
    predictors: list[PredictorTest]

    def to_json(self) -> dict:
        return {
            "evaluation": self.evaluation,
            "dataset": self.dataset,
            "predictors": [p.to_json() for p in self.predictors],
        }


@dataclass(frozen=True)
class PredictionReport:
    points: list[Point]
    reference: str  # "own proxy mask" or the reference mask's name
    rho_retained_mass: float | None  # Spearman(retained mass, loss increase); negative = right
    rho_jaccard: float | None  # Spearman(Jaccard to reference, loss increase)
    evaluations: list[EvaluationTests] = field(default_factory=list)

    def rho(self, predictor: str) -> float | None:
        """Spearman ρ(predictor, loss increase) over every point (all evaluations pooled);
        None when a point lacks the predictor (see :func:`spearman`). The scatter's ρ."""
        return spearman(
            [_nan(p.predictors.get(predictor)) for p in self.points],
            [p.loss_increase for p in self.points],
        )

    @property
    def verdict(self) -> str:
        rho = self.rho_retained_mass
        n = len(self.points)
        if rho is None:
            return (
                f"not enough distinct points for a rank correlation ({n} masks; need {MIN_POINTS})"
            )
        if rho <= -0.5:
            return (
                f"the lens predicted the ordering: more retained mass, smaller loss increase "
                f"(ρ = {rho:+.2f} over {n} masks)"
            )
        if rho < 0:
            return f"the lens predicted the ordering only weakly (ρ = {rho:+.2f} over {n} masks)"
        return (
            f"the lens did not predict the ordering here: retained mass and loss increase do not "
            f"fall together (ρ = {rho:+.2f} over {n} masks)"
        )

    def to_json(self) -> dict:
        return {
            "reference": self.reference,
            "points": [p.to_json() for p in self.points],
            "spearman": {
                "retained_mass_vs_loss_increase": self.rho_retained_mass,
                "jaccard_vs_loss_increase": self.rho_jaccard,
            },
            "verdict": self.verdict,
            "evaluations": [e.to_json() for e in self.evaluations],
        }


def pair_bundles(evaluations: Sequence[Evaluation], profiles: Sequence[Profile]) -> list[Profile]:
    """The bundle (profile) of each evaluation's data.

    A bundle matches an evaluation when its dataset label or its recorded data
    source is the evaluation's; with exactly one bundle given, it serves every
    evaluation. The bundle must be of the evaluation's model shape.
    """
    if not profiles:
        raise LensError(
            "no bundle given: the prediction needs a bundle of the evaluation data "
            "(lens collect --model M --data D --out D.safetensors)"
        )
    paired = []
    for evaluation in evaluations:
        where = str(evaluation.path) if evaluation.path is not None else evaluation.name
        match = matching_profile(evaluation, profiles)
        matches = [match] if match is not None else []
        if not matches and len(profiles) == 1:
            matches = list(profiles)
        if not matches:
            names = ", ".join(f"{p.bundle.path} ({p.bundle.dataset})" for p in profiles)
            raise LensError(
                f"{where}: no bundle of its data '{evaluation.dataset}' among {names}; collect one "
                f"with lens collect --data {evaluation.data}"
            )
        profile = matches[0]
        shape = (profile.num_layers, profile.num_experts)
        if shape != (evaluation.num_layers, evaluation.num_experts):
            raise LensError(
                f"{profile.bundle.path}: has L={shape[0]}, E={shape[1]} but {where} is of a model "
                f"with L={evaluation.num_layers}, E={evaluation.num_experts}; the bundle must come "
                "from the evaluated model"
            )
        paired.append(profile)
    return paired


def matching_profile(evaluation: Evaluation, profiles: Sequence[Profile]) -> Profile | None:
    """The first bundle of the evaluation's data (same dataset label or data source), if any."""
    return next((p for p in profiles if _same_data(p, evaluation)), None)


def _same_data(profile: Profile, evaluation: Evaluation) -> bool:
    meta = profile.bundle.metadata
    if profile.bundle.dataset == evaluation.dataset:
        return True
    source = meta.get("data_source")
    return bool(source) and _same_path(source, evaluation.data)


def _same_path(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def own_proxy_mask(prob: np.ndarray, kept_per_layer: Sequence[int]) -> np.ndarray:
    """D's own proxy mask with r_l experts in layer l: the top r_l of P_l(D), ties to lower ids."""
    order = m.ranking(prob)
    keep = np.zeros(prob.shape, dtype=bool)
    for layer, r in enumerate(kept_per_layer):
        keep[layer, order[layer, :r]] = True
    return keep


def predict_vs_actual(
    evaluations: Sequence[Evaluation],
    profiles: Sequence[Profile],
    *,
    reference: Mask | None = None,
    only: Sequence[str] | None = None,
    data_groups: dict[str, str] | None = None,
    replicates: int = DEFAULT_REPLICATES,
    permutations: int = DEFAULT_PERMUTATIONS,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> PredictionReport:
    """Predicted retained mass (and Jaccard) against measured loss increase, for every mask.

    ``profiles`` are bundles of the evaluation data (see :func:`pair_bundles`);
    ``reference`` is a fixed mask for the Jaccard column (default: each
    evaluation data's own proxy mask of the same size); ``only`` keeps the
    masks with these names. ``data_groups`` maps dataset labels to a group
    (language and domain) for the "same_data" group (see :func:`mask_groups`);
    ``replicates``, ``permutations``, ``level`` and ``seed`` set the rank
    tests of every predictor (:func:`core.rank_tests.rank_test`).
    """
    if not evaluations:
        raise LensError("no evaluation given: run lens evaluate first")
    paired = pair_bundles(evaluations, profiles)
    points: list[Point] = []
    tests: list[EvaluationTests] = []
    settings = dict(replicates=replicates, permutations=permutations, level=level, seed=seed)
    for evaluation, profile in zip(evaluations, paired):
        results = [r for r in evaluation.masks if only is None or r.name in only]
        own = [_point(evaluation, profile, r, reference) for r in results]
        points.extend(own)
        if own:
            groups = mask_groups(evaluation, results, data_groups)
            tests.append(_evaluation_tests(evaluation, own, groups, settings))
    if not points:
        raise LensError("the evaluations hold no masks to compare (lens evaluate --masks ...)")
    increases = [p.loss_increase for p in points]
    rho_mass = spearman([_nan(p.retained_mass) for p in points], increases)
    rho_jaccard = spearman([_nan(p.jaccard) for p in points], increases)
    label = "own proxy mask" if reference is None else reference.name
    return PredictionReport(points, label, rho_mass, rho_jaccard, tests)


def source_label(source: str) -> str:
    """The dataset label of a mask source: the bundle file's name without ``.safetensors``
    (how ``lens collect`` names bundles and how the sample builder's masks record them)."""
    name = Path(source).name
    return name.removesuffix(".safetensors")


def mask_groups(
    evaluation: Evaluation,
    results: Sequence[MaskResult],
    data_groups: dict[str, str] | None = None,
) -> dict[str, list[int]]:
    """Indices of ``results`` in each group worth a within-group ρ.

    - ``same_data``: masks whose every source is of the evaluated data's group.
      A label's group is ``data_groups[label]`` when given (e.g. ``news_en`` and
      ``wiki_en`` both ``en``), else the label itself; masks without sources
      (random, AIMER) are never in it. This is the choice a practitioner faces:
      between calibration sets of the data's own language and domain.
    - ``criterion:NAME``: masks built by one criterion.

    Groups with fewer than :data:`MIN_POINTS` masks are left out (no ρ).
    """
    groups = data_groups or {}
    own = groups.get(evaluation.dataset, evaluation.dataset)
    found: dict[str, list[int]] = {"same_data": []}
    for i, result in enumerate(results):
        labels = [groups.get(source_label(s), source_label(s)) for s in result.mask.sources]
        if labels and all(label == own for label in labels):
            found["same_data"].append(i)
        found.setdefault(f"criterion:{result.mask.criterion}", []).append(i)
    return {name: idx for name, idx in found.items() if len(idx) >= MIN_POINTS}


def _evaluation_tests(
    evaluation: Evaluation, points: list[Point], groups: dict[str, list[int]], settings: dict
) -> EvaluationTests:
    increases = np.array([p.loss_increase for p in points])
    tests = []
    for name in PREDICTORS:
        values = np.array([_nan(p.predictors.get(name)) for p in points])
        overall = rank_test(values, increases, **settings)
        within = {
            group: rank_test(values[idx], increases[idx], **settings)
            for group, idx in groups.items()
        }
        tests.append(PredictorTest(name, overall, within))
    return EvaluationTests(evaluation.name, evaluation.dataset, tests)


def _point(
    evaluation: Evaluation, profile: Profile, result: MaskResult, reference: Mask | None
) -> Point:
    keep = result.mask.as_bool()
    retained = m.retained_mass(keep, profile.prob)
    if reference is None:
        ref = own_proxy_mask(profile.prob, result.mask.kept_per_layer)
    else:
        if (reference.num_layers, reference.num_experts) != keep.shape:
            where = str(reference.path) if reference.path is not None else reference.name
            raise LensError(
                f"{where}: reference mask has L={reference.num_layers}, E={reference.num_experts} "
                f"but the evaluated masks have L={keep.shape[0]}, E={keep.shape[1]}"
            )
        ref = reference.as_bool()
    finite = retained[np.isfinite(retained)]
    values = predictor_values(keep, profile)
    return Point(
        evaluation=evaluation.name,
        dataset=evaluation.dataset,
        bundle=str(profile.bundle.path),
        mask=result.name,
        criterion=result.mask.criterion,
        kept=result.mask.total_kept,
        retained_mass=m.layer_mean(retained),
        retained_mass_min=float(finite.min()) if finite.size else None,
        jaccard=m.layer_mean(m.jaccard(keep, ref)),
        loss=result.loss,
        loss_increase=result.loss_increase,
        top1_agreement=result.top1_agreement,
        retained_mass_rel=m.layer_mean(m.retained_mass_rel(keep, profile.prob)),
        predictors=values,
    )


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value
