"""Preference orders over experts and selection under a budget: per layer, global, grouped.

Every criterion gives two orders (best first): one per layer (``[L, E]``) for
a uniform budget of r experts per layer, and one over all (layer, expert)
pairs for a global budget of R experts in total. Score criteria derive both
from one score array (ties go to the lower expert id, and across layers to
the lower layer); ``coverage`` builds them by round-robin over several
bundles' own ``mass`` rankings.

``coverage`` does not depend on the order the bundles are given in: in each
round the datasets take their turn strongest first, where a dataset's
strength is the mass of its own favourite expert (in that layer for the
per-layer order, anywhere in the model for the global order) — the dataset
that leans hardest on one expert picks first, so at odd r the extra pick goes
to the most concentrated routing. Ties go to the dataset name, then the file
path (two bundles equal in all three are interchangeable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core import metrics as m
from core.errors import LensError
from core.formats.bundle import Bundle
from core.masks.criteria import (
    AimerScores,
    NaeeScores,
    check_same_shape,
    criterion_scores,
    get_criterion,
    mass_signature,
)


@dataclass(frozen=True)
class Orders:
    """Preference orders of one criterion, best first.

    ``layer`` is ``[L, E]``: expert ids of each layer, best first. ``flat`` is
    ``[L·E]``: flat indices ``l·E + e`` over all layers, best first.
    ``scores`` is the ``[L, E]`` score array when the criterion has one.
    """

    layer: np.ndarray
    flat: np.ndarray
    scores: np.ndarray | None = None


def orders_from_scores(scores: np.ndarray) -> Orders:
    scores = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    return Orders(
        layer=m.ranking(scores),
        flat=np.argsort(-scores.reshape(-1), kind="stable"),
        scores=scores,
    )


def coverage_orders(bundles: Sequence[Bundle]) -> Orders:
    """Round-robin over the bundles' own mass rankings, each bundle's best not yet taken."""
    if not bundles:
        raise LensError("criterion 'coverage' needs at least one bundle")
    check_same_shape(bundles)
    probs = [mass_signature([b]) for b in bundles]
    names = [(b.dataset, str(b.path)) for b in bundles]
    num_layers, num_experts = probs[0].shape
    layer = np.stack(
        [
            _round_robin(
                [m.ranking(probs[d][i]) for d in _turns([p[i].max() for p in probs], names)],
                num_experts,
            )
            for i in range(num_layers)
        ]
    )
    flat = _round_robin(
        [
            np.argsort(-probs[d].reshape(-1), kind="stable")
            for d in _turns([p.max() for p in probs], names)
        ],
        num_layers * num_experts,
    )
    return Orders(layer=layer, flat=flat)


def _turns(strength: list[float], names: list[tuple[str, str]]) -> list[int]:
    """Dataset indices in turn order: strongest favourite first, ties by (dataset, path)."""
    return sorted(range(len(strength)), key=lambda d: (-float(strength[d]), names[d]))


def _round_robin(rankings: list[np.ndarray], size: int) -> np.ndarray:
    taken = np.zeros(size, dtype=bool)
    cursors = [0] * len(rankings)
    out: list[int] = []
    while len(out) < size:
        for i, ranking in enumerate(rankings):
            while cursors[i] < size and taken[ranking[cursors[i]]]:
                cursors[i] += 1
            if cursors[i] < size:
                item = int(ranking[cursors[i]])
                taken[item] = True
                out.append(item)
    return np.asarray(out, dtype=np.int64)


def expert_orders(
    criterion: str,
    bundles: Sequence[Bundle] = (),
    aimer: AimerScores | None = None,
    naee: NaeeScores | None = None,
) -> Orders:
    """Both preference orders of ``criterion`` over ``bundles`` (or a checkpoint's ``aimer`` /
    ``naee`` scores)."""
    get_criterion(criterion)
    if criterion == "coverage":
        return coverage_orders(bundles)
    return orders_from_scores(criterion_scores(criterion, bundles, aimer, naee))


def select_per_layer(orders: Orders, r: int, groups: int = 1) -> np.ndarray:
    """Boolean ``[L, E]``: the first r experts of every layer's order.

    With ``groups`` > 1 the E experts form that many equal contiguous groups
    (DeepSeek-V3's routing groups) and each group keeps its best r / groups.
    """
    num_layers, num_experts = orders.layer.shape
    m.check_budget(r, num_experts)
    mask = np.zeros((num_layers, num_experts), dtype=bool)
    if groups < 1:
        raise LensError(f"groups={groups} must be at least 1")
    if groups == 1:
        np.put_along_axis(mask, orders.layer[:, :r], True, axis=-1)
        return mask
    if num_experts % groups or r % groups:
        raise LensError(
            f"groups={groups} must divide both r={r} and the {num_experts} experts per layer"
        )
    size, per_group = num_experts // groups, r // groups
    for layer, order in enumerate(orders.layer):
        taken = [0] * groups
        for e in order:
            if taken[e // size] < per_group:
                taken[e // size] += 1
                mask[layer, e] = True
    return mask


def select_global(orders: Orders, total: int, min_per_layer: int) -> np.ndarray:
    """Boolean ``[L, E]`` keeping ``total`` experts: each layer's best ``min_per_layer``, then the
    best remaining (layer, expert) pairs of the global order."""
    num_layers, num_experts = orders.layer.shape
    if not 1 <= min_per_layer <= num_experts:
        raise LensError(f"min_per_layer={min_per_layer} is outside 1..{num_experts}")
    low, high = num_layers * min_per_layer, num_layers * num_experts
    if not low <= total <= high:
        raise LensError(
            f"budget={total} is outside {low}..{high} ({num_layers} layers × at least "
            f"{min_per_layer} (top-k) and at most {num_experts} experts)"
        )
    mask = select_per_layer(orders, min_per_layer)
    left = total - low
    flat = mask.reshape(-1)
    for index in orders.flat:
        if left == 0:
            break
        if not flat[index]:
            flat[index] = True
            left -= 1
    return mask
