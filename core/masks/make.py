"""Making a mask: a criterion's orders cut to ``r`` experts per layer or ``budget`` in total.

A global budget keeps R experts in total: first every layer's best ``floor``
experts (``floor`` = the model's top-k, so each layer can still route), then
the best remaining (layer, expert) pairs by the global order. Layers a
bundle lists as hash-routed (DeepSeek-V4's token-id-table layers) are kept
whole, with either kind of budget, and listed in the mask's
``hash_routed_layers``. Scores are
compared across layers as they are (``mass``, ``frequency`` and ``gate`` are
per-token shares that sum to the same total in every layer; activation-based
scores are larger where activations are). The criteria are in
:mod:`core.masks.criteria`, the orders and selection in
:mod:`core.masks.selection`, the file in :mod:`core.formats.mask`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from core import __version__
from core import metrics as m
from core.errors import LensError
from core.formats.bundle import Bundle, load_bundle
from core.formats.mask import Mask
from core.masks.criteria import AimerScores, NaeeScores, get_criterion, mass_signature
from core.masks.selection import Orders, expert_orders, select_global, select_per_layer


def load_bundles(paths: Sequence[str | os.PathLike[str]]) -> list[Bundle]:
    return [load_bundle(p) for p in paths]


def make_mask(
    criterion: str,
    bundles: Sequence[Bundle] = (),
    *,
    r: int | None = None,
    budget: int | None = None,
    aimer: AimerScores | None = None,
    min_per_layer: int | None = None,
    groups: int = 1,
    orders: Orders | None = None,
    naee: NaeeScores | None = None,
) -> Mask:
    """Build a mask: ``r`` experts in every layer, or ``budget`` experts in total.

    ``bundles`` are the calibration statistics (all of them pooled; ``coverage``
    treats each as one dataset). ``aimer`` carries a checkpoint's AIMER scores
    for the ``aimer`` criterion (computed by
    :func:`core.prune.aimer.aimer_checkpoint_scores`, so masks never read
    weights). A global budget never leaves a layer with fewer than
    ``min_per_layer`` experts (default: the model's top-k). ``orders`` reuses
    precomputed :func:`expert_orders` (the TUI recomputes budgets on every key).
    ``groups`` (with ``r``) keeps r / groups experts in each of that many equal
    contiguous expert groups, as DeepSeek-V3's group-limited routing needs.
    ``naee`` carries the result of NAEE's search (:mod:`core.naee`) for one r.
    """
    spec = get_criterion(criterion)
    if (r is None) == (budget is None):
        raise LensError("give exactly one of r (experts per layer) and budget (experts in total)")
    if criterion == "aimer" and bundles:
        raise LensError(
            "criterion 'aimer' is calibration-free and reads no bundles; pass only --model"
        )
    if criterion == "naee":
        if bundles:
            raise LensError(
                "criterion 'naee' runs the model on --data and reads no bundles; pass only "
                "--model and --data"
            )
        if naee is not None and r != naee.r:
            raise LensError(
                f"criterion 'naee' searched for r={naee.r}; give that --r (no --budget)"
            )
    if spec.needs and not bundles:
        raise LensError(f"criterion '{criterion}' needs at least one bundle")
    if orders is None:
        orders = expert_orders(criterion, bundles, aimer, naee)
    num_layers, num_experts = orders.layer.shape
    top_k, model_name = _model_identity(bundles, naee if criterion == "naee" else aimer)
    hashed = hash_routed_layers(bundles, aimer if criterion == "aimer" else None)
    if r is not None:
        if top_k and 1 <= r < top_k:
            raise LensError(
                f"r={r} is below the model's top-k of {top_k}: every layer must keep at least top-k experts"
            )
        selected = select_per_layer(orders, int(r), int(groups))
        selected[hashed] = True
        budget_doc = {"kind": "per_layer", "r": int(r)}
        if groups > 1:
            budget_doc["groups"] = int(groups)
    else:
        if groups > 1:
            raise LensError("groups work with r (the same count in every layer), not a budget")
        floor = int(min_per_layer) if min_per_layer is not None else (top_k or 1)
        if top_k and floor < top_k:
            raise LensError(
                f"min_per_layer={floor} is below the model's top-k of {top_k}: every layer must "
                "keep at least top-k experts"
            )
        assert budget is not None
        selected = _select_global_around(orders, int(budget), floor, hashed)
        budget_doc = {"kind": "global", "total": int(budget), "min_per_layer": floor}
    return Mask(
        model=model_name,
        num_experts=num_experts,
        criterion=criterion,
        sources=(
            [str(naee.metadata["data"])]
            if criterion == "naee" and naee and naee.metadata and "data" in naee.metadata
            else [str(b.path) for b in bundles]
        ),
        layers=m.kept_experts(selected),
        top_k=top_k,
        budget=budget_doc,
        extra={
            **({"naee": naee.metadata} if criterion == "naee" and naee and naee.metadata else {}),
            **({"hash_routed_layers": hashed} if hashed else {}),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tool_version": __version__,
        },
    )


def hash_routed_layers(bundles: Sequence[Bundle], aimer: AimerScores | None = None) -> list[int]:
    """MoE layers any bundle (or the ``aimer`` checkpoint) lists as hash-routed (DeepSeek-V4),
    which masks keep whole.

    A token-id table picks those layers' experts, so no mask can reroute them:
    evaluation and pruning accept only masks keeping every expert there.
    """
    found = {i for bundle in bundles for i in bundle.hash_routed_layers}
    return sorted(found | set(aimer.hash_routed_layers if aimer is not None else ()))


def _select_global_around(orders: Orders, total: int, floor: int, hashed: list[int]) -> np.ndarray:
    """:func:`select_global` over the learned-router layers, the ``hashed`` ones kept whole.

    ``total`` still counts every kept expert, the hash-routed layers' E each included.
    """
    if not hashed:
        return select_global(orders, total, floor)
    num_layers, num_experts = orders.layer.shape
    learned = [i for i in range(num_layers) if i not in set(hashed)]
    whole = len(hashed) * num_experts
    low, high = whole + len(learned) * floor, num_layers * num_experts
    if not low <= total <= high:
        raise LensError(
            f"budget={total} is outside {low}..{high}: hash-routed layers {hashed} keep all "
            f"{num_experts} experts ({whole}), the other {len(learned)} layers at least "
            f"{floor} (top-k) and at most {num_experts} each"
        )
    position = {layer: row for row, layer in enumerate(learned)}
    flat = [
        position[int(i) // num_experts] * num_experts + int(i) % num_experts
        for i in orders.flat
        if int(i) // num_experts in position
    ]
    sub = Orders(layer=orders.layer[learned], flat=np.asarray(flat, dtype=np.int64))
    selected = np.ones((num_layers, num_experts), dtype=bool)
    selected[learned] = select_global(sub, total - whole, floor)
    return selected


def _model_identity(
    bundles: Sequence[Bundle], scores: AimerScores | NaeeScores | None
) -> tuple[int | None, str]:
    """(top-k, model name) from the bundles, or from the model's ``aimer`` / ``naee`` scores."""
    if bundles:
        top_ks = {b.top_k for b in bundles if b.top_k}
        models = list(dict.fromkeys(b.model for b in bundles))
        if len(models) > 1:
            raise LensError(
                f"{bundles[-1].path}: model is {bundles[-1].model!r} but {bundles[0].path} has "
                f"{bundles[0].model!r}; a mask pools bundles of one model"
            )
        if len(top_ks) > 1:
            raise LensError(
                f"bundles disagree on top_k ({sorted(top_ks)}); they must share a model"
            )
        return (top_ks.pop() if top_ks else None), models[0]
    if scores is None:
        raise LensError("criterion 'aimer' reads the checkpoint's weights: pass --model")
    return scores.top_k, scores.model


def retained_mass_by_source(mask: Mask, bundles: Sequence[Bundle]) -> dict[str, float | None]:
    """Mean over layers of the routing mass each bundle keeps under ``mask``."""
    keep = mask.as_bool()
    out = {}
    for bundle in bundles:
        if (bundle.num_layers, bundle.num_experts) != keep.shape:
            continue
        out[str(bundle.path)] = m.layer_mean(m.retained_mass(keep, mass_signature([bundle])))
    return out
