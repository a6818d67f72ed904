"""Expert masks (SPEC section 5): pruning criteria, budgets, and the mask JSON file.

A criterion turns statistics into a preference over experts. Every criterion
gives two orders (best first): one per layer (``[L, E]``) for a uniform budget
of r experts per layer, and one over all (layer, expert) pairs for a global
budget of R experts in total. Score criteria derive both orders from one score
array (ties go to the lower expert id, and across layers to the lower layer);
``coverage`` builds them by round-robin over several bundles' own ``mass``
rankings.

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
| aimer | −mean|θ_e| / sqrt(mean θ_e²) over the expert's weights (``--model``, no data) |
| coverage | round-robin over each bundle's mass ranking, each bundle's best not yet kept |

A global budget keeps R experts in total: first every layer's best ``floor``
experts (``floor`` = the model's top-k, so each layer can still route), then
the best remaining (layer, expert) pairs by the global order. Scores are
compared across layers as they are (``mass``, ``frequency`` and ``gate`` are
per-token shares that sum to the same total in every layer; activation-based
scores are larger where activations are).

This module imports numpy only; ``aimer`` reads checkpoint weights through
:mod:`core.prune.aimer` (no torch either).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import __version__
from core import metrics as m
from core.bundle import Bundle, atomic_write_text, load_bundle
from core.engine import Profile, check_compatible
from core.errors import LensError

MASK_FORMAT = "expert-calibration-lens/mask"


@dataclass(frozen=True)
class Criterion:
    name: str
    needs: tuple[str, ...]  # bundle statistics the criterion reads
    summary: str
    per_routed_token: bool = False  # numerator / Σ topk_count
    numerator: str | None = None


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
        Criterion("aimer", (), "calibration-free: concentration of the expert's weights (AIMER)"),
        Criterion("coverage", ("prob_sum",), "round-robin over several datasets' mass rankings"),
    )
}


# --------------------------------------------------------------------------- the mask file


@dataclass(frozen=True)
class Mask:
    """Kept expert ids per MoE layer, plus where they came from.

    ``layers[l]`` is the ascending list of kept expert ids of MoE layer l.
    ``top_k`` is the model's routing top-k when known (from the bundles or the
    checkpoint); ``budget`` describes how the mask was cut
    (``{"kind": "per_layer", "r": 8}`` or ``{"kind": "global", "total": 192,
    "min_per_layer": 4}``). ``extra`` keeps any other keys of a read file.
    """

    model: str
    num_experts: int
    criterion: str
    sources: list[str]
    layers: list[list[int]]
    top_k: int | None = None
    budget: dict | None = None
    extra: dict = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def kept_per_layer(self) -> list[int]:
        return [len(ids) for ids in self.layers]

    @property
    def total_kept(self) -> int:
        return sum(self.kept_per_layer)

    @property
    def name(self) -> str:
        """A short label: the file name without ``.json``, else criterion and sources."""
        if self.path is not None:
            return self.path.name.removesuffix(".json")
        sources = "+".join(Path(s).name.removesuffix(".safetensors") for s in self.sources)
        return f"{self.criterion}:{sources}" if sources else self.criterion

    def as_bool(self) -> np.ndarray:
        """The mask as a boolean ``[L, E]`` array."""
        out = np.zeros((self.num_layers, self.num_experts), dtype=bool)
        for layer, ids in enumerate(self.layers):
            out[layer, ids] = True
        return out

    def summary(self, name: str | None = None) -> dict:
        """What reports say about a mask: where it came from and how many experts it keeps."""
        return {
            "name": self.name if name is None else name,
            "path": None if self.path is None else str(self.path),
            "model": self.model,
            "criterion": self.criterion,
            "sources": list(self.sources),
            "budget": self.budget,
            "kept_per_layer": self.kept_per_layer,
            "total_kept": self.total_kept,
        }

    def to_json(self) -> dict:
        doc = {
            "format": MASK_FORMAT,
            "model": self.model,
            "num_experts": self.num_experts,
            "criterion": self.criterion,
            "sources": list(self.sources),
            "layers": [list(ids) for ids in self.layers],
        }
        if self.top_k is not None:
            doc["top_k"] = self.top_k
        if self.budget is not None:
            doc["budget"] = dict(self.budget)
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc


def write_mask(path: str | os.PathLike[str], mask: Mask) -> Path:
    """Write the SPEC mask JSON atomically; one layer per line so diffs stay readable."""
    path = Path(path)
    doc = mask.to_json()
    layers = doc.pop("layers")
    head = json.dumps(doc, indent=2)[:-2]  # drop the closing "\n}"
    rows = ",\n".join("    " + json.dumps(ids) for ids in layers)
    atomic_write_text(path, f'{head},\n  "layers": [\n{rows}\n  ]\n}}\n')
    return path


def read_mask(path: str | os.PathLike[str]) -> Mask:
    """Read and check a mask file; any problem is one :class:`LensError` line naming the file."""
    path = Path(path)
    if not path.exists():
        raise LensError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LensError(f"{path}: not a mask file (not valid JSON: {exc.msg})") from None
    except OSError as exc:
        raise LensError(f"{path}: cannot read ({exc.strerror})") from None
    return mask_from_json(doc, where=str(path), path=path)


def mask_from_json(doc: object, *, where: str = "mask", path: Path | None = None) -> Mask:
    """Build a :class:`Mask` from a parsed JSON document, checking SPEC section 5."""
    if not isinstance(doc, dict):
        raise LensError(f"{where}: not a mask file (the JSON is not an object)")
    if doc.get("format") != MASK_FORMAT:
        raise LensError(
            f"{where}: not a mask file (format is {doc.get('format')!r}, expected {MASK_FORMAT!r})"
        )
    for key in ("model", "num_experts", "criterion", "sources", "layers"):
        if key not in doc:
            raise LensError(f"{where}: mask has no {key!r}")
    num_experts = doc["num_experts"]
    if not _is_int(num_experts) or num_experts < 1:
        raise LensError(f"{where}: num_experts must be a positive integer, got {num_experts!r}")
    layers = doc["layers"]
    if not isinstance(layers, list) or not layers:
        raise LensError(f"{where}: 'layers' must be a non-empty list with one list per MoE layer")
    if not isinstance(doc["sources"], list) or not all(isinstance(s, str) for s in doc["sources"]):
        raise LensError(f"{where}: 'sources' must be a list of paths")
    top_k = doc.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise LensError(f"{where}: top_k must be a non-negative integer, got {top_k!r}")
    checked = [_check_layer(ids, layer, num_experts, where) for layer, ids in enumerate(layers)]
    known = {"format", "model", "num_experts", "criterion", "sources", "layers", "top_k", "budget"}
    return Mask(
        model=str(doc["model"]),
        num_experts=int(num_experts),
        criterion=str(doc["criterion"]),
        sources=list(doc["sources"]),
        layers=checked,
        top_k=int(top_k) if top_k else None,
        budget=doc.get("budget") if isinstance(doc.get("budget"), dict) else None,
        extra={k: v for k, v in doc.items() if k not in known},
        path=path,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_layer(ids: object, layer: int, num_experts: int, where: str) -> list[int]:
    if not isinstance(ids, list) or not all(_is_int(e) for e in ids):
        raise LensError(f"{where}: layer {layer} must be a list of integer expert ids")
    bad = [e for e in ids if not 0 <= e < num_experts]
    if bad:
        raise LensError(
            f"{where}: layer {layer} names expert {bad[0]}, outside 0..{num_experts - 1} "
            f"(num_experts={num_experts})"
        )
    if len(set(ids)) != len(ids):
        dup = next(e for e in ids if ids.count(e) > 1)
        raise LensError(f"{where}: layer {layer} lists expert {dup} more than once")
    if not ids:
        raise LensError(f"{where}: layer {layer} keeps no experts")
    return sorted(ids)


def check_mask_fits(
    mask: Mask,
    *,
    num_layers: int,
    num_experts: int,
    top_k: int | None,
    where: str,
    what: str,
) -> None:
    """Refuse a mask whose shape does not match a model or whose layers keep fewer than top-k."""
    if mask.num_experts != num_experts:
        raise LensError(
            f"{where}: mask is for {mask.num_experts} experts per layer but {what} has {num_experts}"
        )
    if mask.num_layers != num_layers:
        raise LensError(
            f"{where}: mask has {mask.num_layers} layers but {what} has {num_layers} MoE layers"
        )
    if top_k:
        short = [(layer, n) for layer, n in enumerate(mask.kept_per_layer) if n < top_k]
        if short:
            layer, n = short[0]
            raise LensError(
                f"{where}: layer {layer} keeps {n} experts, fewer than the model's top-k of {top_k} "
                f"({len(short)} layer(s) do); every layer must keep at least top-k experts"
            )


# --------------------------------------------------------------------------- scores


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
            )
        part = np.add.reduce(array, axis=0, dtype=np.float64)
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
    criterion: str, bundles: Sequence[Bundle] = (), model: str | None = None
) -> np.ndarray:
    """Scores ``[L, E]`` (float64, higher kept) of a score criterion; see the module table."""
    spec = _criterion(criterion)
    if criterion == "coverage":
        raise LensError("criterion 'coverage' has no single score; use expert_orders()")
    if criterion == "aimer":
        if model is None:
            raise LensError("criterion 'aimer' reads the checkpoint's weights: pass --model")
        from core.prune.aimer import aimer_scores

        return aimer_scores(model).scores
    if not bundles:
        raise LensError(f"criterion '{criterion}' needs at least one bundle")
    check_same_shape(bundles)
    if criterion == "mass":
        return mass_signature(bundles)
    if spec.per_routed_token:
        assert spec.numerator is not None
        numerator = pooled_sum(bundles, spec.numerator, criterion)
        routed = pooled_sum(bundles, "topk_count", criterion)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(routed > 0, numerator / np.where(routed > 0, routed, 1.0), 0.0)
    return pooled_sum(bundles, spec.needs[0], criterion)


def _criterion(name: str) -> Criterion:
    spec = CRITERIA.get(name)
    if spec is None:
        raise LensError(f"unknown criterion {name!r} (choose from {', '.join(CRITERIA)})")
    return spec


# --------------------------------------------------------------------------- orders and budgets


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
    num_layers, num_experts = probs[0].shape
    layer = np.stack(
        [_round_robin([m.ranking(p[i]) for p in probs], num_experts) for i in range(num_layers)]
    )
    flat = _round_robin(
        [np.argsort(-p.reshape(-1), kind="stable") for p in probs], num_layers * num_experts
    )
    return Orders(layer=layer, flat=flat)


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
    criterion: str, bundles: Sequence[Bundle] = (), model: str | None = None
) -> Orders:
    """Both preference orders of ``criterion`` over ``bundles`` (or the checkpoint ``model``)."""
    _criterion(criterion)
    if criterion == "coverage":
        return coverage_orders(bundles)
    return orders_from_scores(criterion_scores(criterion, bundles, model))


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


# --------------------------------------------------------------------------- making a mask


def load_bundles(paths: Sequence[str | os.PathLike[str]]) -> list[Bundle]:
    return [load_bundle(p) for p in paths]


def make_mask(
    criterion: str,
    bundles: Sequence[Bundle] = (),
    *,
    r: int | None = None,
    budget: int | None = None,
    model: str | None = None,
    min_per_layer: int | None = None,
    groups: int = 1,
    orders: Orders | None = None,
) -> Mask:
    """Build a mask: ``r`` experts in every layer, or ``budget`` experts in total.

    ``bundles`` are the calibration statistics (all of them pooled; ``coverage``
    treats each as one dataset). ``model`` is the checkpoint folder for
    ``aimer``. A global budget never leaves a layer with fewer than
    ``min_per_layer`` experts (default: the model's top-k). ``orders`` reuses
    precomputed :func:`expert_orders` (the TUI recomputes budgets on every key).
    ``groups`` (with ``r``) keeps r / groups experts in each of that many equal
    contiguous expert groups, as DeepSeek-V3's group-limited routing needs.
    """
    spec = _criterion(criterion)
    if (r is None) == (budget is None):
        raise LensError("give exactly one of r (experts per layer) and budget (experts in total)")
    if criterion == "aimer" and bundles:
        raise LensError(
            "criterion 'aimer' is calibration-free and reads no bundles; pass only --model"
        )
    if spec.needs and not bundles:
        raise LensError(f"criterion '{criterion}' needs at least one bundle")
    if orders is None:
        orders = expert_orders(criterion, bundles, model)
    num_layers, num_experts = orders.layer.shape
    top_k, model_name = _model_identity(bundles, model)
    if r is not None:
        if top_k and 1 <= r < top_k:
            raise LensError(
                f"r={r} is below the model's top-k of {top_k}: every layer must keep at least top-k experts"
            )
        selected = select_per_layer(orders, int(r), int(groups))
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
        selected = select_global(orders, int(budget), floor)
        budget_doc = {"kind": "global", "total": int(budget), "min_per_layer": floor}
    return Mask(
        model=model_name,
        num_experts=num_experts,
        criterion=criterion,
        sources=[str(b.path) for b in bundles],
        layers=m.kept_experts(selected),
        top_k=top_k,
        budget=budget_doc,
        extra={
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tool_version": __version__,
        },
    )


def _model_identity(bundles: Sequence[Bundle], model: str | None) -> tuple[int | None, str]:
    """(top-k, model name) from the bundles, or from the checkpoint for ``aimer``."""
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
    assert model is not None
    from core.prune.checkpoint import read_config

    config = read_config(model)
    top_k = config.get("num_experts_per_tok")
    return (int(top_k) if _is_int(top_k) else None), str(model)


def retained_mass_by_source(mask: Mask, bundles: Sequence[Bundle]) -> dict[str, float | None]:
    """Mean over layers of the routing mass each bundle keeps under ``mask``."""
    keep = mask.as_bool()
    out = {}
    for bundle in bundles:
        if (bundle.num_layers, bundle.num_experts) != keep.shape:
            continue
        out[str(bundle.path)] = m.layer_mean(m.retained_mass(keep, mass_signature([bundle])))
    return out
