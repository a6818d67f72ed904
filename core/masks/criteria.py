"""Pruning criteria (docs/formats.md §Criteria): scores ``[L, E]`` of experts as functions of bundles.

A criterion turns statistics into a score per expert (higher kept), from
which :mod:`core.masks.selection` derives its preference orders; ``coverage``
has no single score and is built there by round-robin.

| criterion | score of expert e in layer l (pooled over all samples of all bundles) |
|---|---|
| mass | P_l(S)[e] = Σ prob_sum / Σ T |
| frequency | Σ topk_count |
| gate | Σ weight_sum |
| energy | Σ energy_sum |
| ean | Σ act_norm_sum |
| man | Σ act_norm_sum / Σ topk_count (0 if never routed) |
| msan | Σ act_sqnorm_sum / Σ topk_count (0 if never routed) |
| reap | Σ reap_sum / Σ topk_count (0 if never routed) |
| wean | Σ reap_sum (REAP's ``weighted_ean_sum``: Σ w‖y‖ over routed tokens, no mean) |
| reap-literal | Σ reap_literal_sum / Σ reap_literal_count (REAP as Cerebras' code computes it) |
| naee | the kept set of NAEE's per-layer output-error search (``--model`` + ``--data``) |
| aimer | −mean|θ_e| / sqrt(mean θ_e²) over the expert's weights (``--model``, no data) |
| coverage | round-robin over each bundle's mass ranking, each bundle's best not yet kept |

numpy only. ``aimer`` scores need the checkpoint's weights, not bundles: the
caller computes them with :mod:`core.prune.aimer` and passes them in as
:class:`AimerScores`, so masks never reach into pruning. ``naee`` runs the
model (torch, :mod:`core.naee`) and arrives the same way, as
:class:`NaeeScores`; its score only makes sense at the r it was searched for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.engine import Profile, check_compatible
from core.errors import LensError
from core.formats.bundle import Bundle


@dataclass(frozen=True)
class Criterion:
    name: str
    needs: tuple[str, ...]  # bundle statistics the criterion reads
    summary: str
    per_routed_token: bool = False  # numerator / Σ denominator (0 if never routed)
    numerator: str | None = None
    denominator: str = "topk_count"


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion("mass", ("prob_sum",), "mean router probability P_l(S) (the paper's proxy mask)"),
        Criterion("frequency", ("topk_count",), "how often the expert is in the top-k"),
        Criterion("gate", ("weight_sum",), "sum of the routing weights it received"),
        Criterion("energy", ("energy_sum",), "feature energy Σ w²‖y‖²"),
        Criterion("ean", ("act_norm_sum",), "expert activation norm Σ ‖y‖ (EAN)"),
        Criterion(
            "man",
            ("act_norm_sum", "topk_count"),
            "mean activation norm over routed tokens (MAN)",
            per_routed_token=True,
            numerator="act_norm_sum",
        ),
        Criterion(
            "msan",
            ("act_sqnorm_sum", "topk_count"),
            "mean squared activation norm over routed tokens (MSAN)",
            per_routed_token=True,
            numerator="act_sqnorm_sum",
        ),
        Criterion(
            "reap",
            ("reap_sum", "topk_count"),
            "mean gate-weighted activation norm w‖y‖ over routed tokens (REAP)",
            per_routed_token=True,
            numerator="reap_sum",
        ),
        Criterion(
            "wean",
            ("reap_sum",),
            "summed gate-weighted activation norm Σ w‖y‖ (REAP's weighted_ean_sum)",
        ),
        Criterion(
            "reap-literal",
            ("reap_literal_sum", "reap_literal_count"),
            "REAP as Cerebras' code computes it: mean of softmax-probability × ‖y‖ over the "
            "top-k of the raw logits (renormalised only with norm_topk_prob)",
            per_routed_token=True,
            numerator="reap_literal_sum",
            denominator="reap_literal_count",
        ),
        Criterion("aimer", (), "calibration-free: concentration of the expert's weights (AIMER)"),
        Criterion(
            "naee",
            (),
            "output-error search (NAEE): per layer, the r experts whose removal changes the "
            "MoE block's output least on --data (needs --model)",
        ),
        Criterion("coverage", ("prob_sum",), "round-robin over several datasets' mass rankings"),
    )
}


@dataclass(frozen=True)
class AimerScores:
    """A checkpoint's calibration-free AIMER scores, computed by :mod:`core.prune.aimer`.

    ``scores`` is ``[L, E]`` (higher kept); ``model`` names the checkpoint in
    the mask file and ``top_k`` is its routing top-k from ``config.json``;
    ``hash_routed_layers`` are the MoE layers a token-id table routes
    (DeepSeek-V4), which masks keep whole.
    """

    model: str
    scores: np.ndarray
    top_k: int | None = None
    hash_routed_layers: tuple[int, ...] = ()


@dataclass(frozen=True)
class NaeeScores:
    """The result of NAEE's search (:mod:`core.naee`) for one r, as scores ``[L, E]``.

    The kept experts of every layer score above every dropped one, so the
    top-r of each layer is exactly the searched set (greedy elimination also
    orders the dropped experts: removed later scores higher). ``r`` is the
    budget searched for: a mask of any other size would not be NAEE's.
    ``metadata`` (search method per layer, objective values, tokens) goes
    into the mask file under ``naee``.
    """

    model: str
    scores: np.ndarray
    r: int
    top_k: int | None = None
    metadata: dict | None = None


def pooled_sum(bundles: Sequence[Bundle], name: str, criterion: str) -> np.ndarray:
    """Σ over every sample of every bundle of the ``[N, L, E]`` statistic ``name`` → ``[L, E]``."""
    total = None
    for bundle in bundles:
        array = bundle.get(name)
        if array is None:
            raise LensError(
                f"{bundle.path}: criterion '{criterion}' needs '{name}', which this bundle lacks; "
                "collect it with `lens collect` (energy statistics are on by default, "
                "not with --no-energy)"
                + (
                    "; bundles collected before reap-literal existed, and Llama-4 bundles, lack it"
                    if name.startswith("reap_literal")
                    else ""
                )
            )
        part = bundle.total(name)
        total = part if total is None else total + part
    assert total is not None
    return total


def check_same_shape(bundles: Sequence[Bundle]) -> None:
    """Refuse bundles whose models have different layer or expert counts."""
    check_compatible([Profile(b) for b in bundles])


def mass_signature(bundles: Sequence[Bundle]) -> np.ndarray:
    """P_l over all samples of all bundles (token-weighted pooling), ``[L, E]``."""
    tokens = sum(b.num_tokens for b in bundles)
    return m.divide_by_tokens(pooled_sum(bundles, "prob_sum", "mass"), tokens)


def criterion_scores(
    criterion: str,
    bundles: Sequence[Bundle] = (),
    aimer: AimerScores | None = None,
    naee: NaeeScores | None = None,
) -> np.ndarray:
    """Scores ``[L, E]`` (float64, higher kept) of a score criterion; see the module table."""
    spec = get_criterion(criterion)
    if criterion == "coverage":
        raise LensError("criterion 'coverage' has no single score; use expert_orders()")
    if criterion == "aimer":
        if aimer is None:
            raise LensError("criterion 'aimer' reads the checkpoint's weights: pass --model")
        return np.asarray(aimer.scores, dtype=np.float64)
    if criterion == "naee":
        if naee is None:
            raise LensError(
                "criterion 'naee' runs the model on calibration text: pass --model and --data"
            )
        return np.asarray(naee.scores, dtype=np.float64)
    if not bundles:
        raise LensError(f"criterion '{criterion}' needs at least one bundle")
    check_same_shape(bundles)
    if criterion == "mass":
        return mass_signature(bundles)
    if spec.per_routed_token:
        assert spec.numerator is not None
        numerator = pooled_sum(bundles, spec.numerator, criterion)
        routed = pooled_sum(bundles, spec.denominator, criterion)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(routed > 0, numerator / np.where(routed > 0, routed, 1.0), 0.0)
    return pooled_sum(bundles, spec.needs[0], criterion)


def get_criterion(name: str) -> Criterion:
    """The criterion called ``name``; an unknown name is one line listing the known ones."""
    spec = CRITERIA.get(name)
    if spec is None:
        raise LensError(f"unknown criterion {name!r} (choose from {', '.join(CRITERIA)})")
    return spec
