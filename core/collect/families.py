"""Where each MoE family keeps its router and experts, and how it routes.

One small adapter per family rather than ``if family == ...`` scattered
through the capture code. In transformers 5.x nearly every MoE block has the
same shape: a router child (``router`` or ``gate``) returning
``(dense_logits[T, E], top_k_weights[T, k], top_k_index[T, k])`` and a fused
``experts`` child built with ``@use_experts_implementation`` that receives
``(hidden[T, H], top_k_index, top_k_weights)`` — exactly the routing the model
used. Llama-4 differs: its router returns ``(scores[T, E], logits)`` and its
experts run densely on inputs already scaled by the score.

Known block classes are listed in :data:`FAMILIES` (and tested); any other
block with that common shape is still found by :func:`find_moe_layers`
(reported as the ``generic`` family), so new transformers models work before
they are listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import LensError


@dataclass(frozen=True)
class Family:
    """How one MoE family is wired."""

    name: str
    router_attr: str  # child of the MoE block that computes the routing
    logits_index: int = 0  # where the dense [T, E] router logits sit in the router's output
    style: str = "fused"  # "fused": experts(hidden, top_k_index, top_k_weights); "llama4"
    routing: str = "softmax over all experts, top-k"  # recorded in bundle metadata
    experts_attr: str = "experts"


#: Known MoE block classes (transformers 5.x) and their family.
FAMILIES: dict[str, Family] = {
    "GptOssMLP": Family("gpt_oss", "router", routing="top-k of logits (with bias), softmax over k"),
    "MixtralSparseMoeBlock": Family("mixtral", "gate"),
    "Qwen2MoeSparseMoeBlock": Family(
        "qwen2_moe", "gate", routing="softmax top-k, plus an always-on shared expert"
    ),
    "Qwen3MoeSparseMoeBlock": Family("qwen3_moe", "gate"),
    "Qwen3NextSparseMoeBlock": Family("qwen3_next", "gate"),
    "OlmoeSparseMoeBlock": Family("olmoe", "gate"),
    "DeepseekV2Moe": Family("deepseek_v2", "gate", routing="softmax, (group-limited) greedy top-k"),
    "DeepseekV3MoE": Family(
        "deepseek_v3",
        "gate",
        routing="sigmoid scores + correction bias, grouped top-k (prob_sum is the softmax of the logits)",
    ),
    "GraniteMoeMoE": Family("granitemoe", "router", routing="top-k of logits, softmax over k"),
    "PhimoeSparseMoeBlock": Family("phimoe", "router", routing="sparsemixer top-k"),
    "JambaSparseMoeBlock": Family("jamba", "router"),
    "MiniMaxSparseMoeBlock": Family("minimax", "gate"),
    "Llama4TextMoe": Family(
        "llama4",
        "router",
        logits_index=1,
        style="llama4",
        routing="top-k of logits, sigmoid weights applied to the input",
    ),
}

#: Router attribute names tried for blocks that are not listed in FAMILIES.
GENERIC_ROUTER_ATTRS = ("router", "gate")


@dataclass(frozen=True)
class MoeLayer:
    """One MoE block of a loaded model."""

    index: int  # 0-based among MoE blocks (the bundle's layer axis)
    name: str  # module path, e.g. "model.layers.3.mlp"
    block: Any
    router: Any
    experts: Any
    family: Family
    num_experts: int
    top_k: int


def _num_experts(router: Any, experts: Any) -> int | None:
    weight = getattr(router, "weight", None)
    if weight is not None and getattr(weight, "ndim", 0) == 2:
        return int(weight.shape[0])
    for owner in (router, experts):
        value = getattr(owner, "num_experts", None)
        if isinstance(value, int):
            return value
    return None


def _top_k(block: Any, router: Any, config: Any) -> int | None:
    for owner in (router, block):
        value = getattr(owner, "top_k", None)
        if isinstance(value, int):
            return value
    value = getattr(config, "num_experts_per_tok", None)
    return value if isinstance(value, int) else None


def _generic_family(block: Any) -> Family | None:
    """A block not in FAMILIES that still has the common fused shape."""
    experts = getattr(block, "experts", None)
    # @use_experts_implementation sets has_gate on the instance: the fused interface.
    if experts is None or not hasattr(experts, "has_gate"):
        return None
    for attr in GENERIC_ROUTER_ATTRS:
        router = getattr(block, attr, None)
        weight = getattr(router, "weight", None)
        if weight is not None and getattr(weight, "ndim", 0) == 2:
            return Family("generic", attr)
    return None


def find_moe_layers(model: Any) -> list[MoeLayer]:
    """Every MoE block of ``model`` in forward order; a clear error if there is none."""
    config = getattr(model, "config", None)
    layers: list[MoeLayer] = []
    for name, module in model.named_modules():
        family = FAMILIES.get(type(module).__name__) or _generic_family(module)
        if family is None:
            continue
        router = getattr(module, family.router_attr, None)
        experts = getattr(module, family.experts_attr, None)
        if router is None or experts is None:
            continue
        num_experts = _num_experts(router, experts)
        top_k = _top_k(module, router, config)
        if num_experts is None or top_k is None:
            raise LensError(
                f"{name} ({type(module).__name__}): cannot tell its number of experts or top-k"
            )
        layers.append(
            MoeLayer(len(layers), name, module, router, experts, family, num_experts, top_k)
        )
    if not layers:
        known = ", ".join(sorted(FAMILIES))
        raise LensError(
            f"{type(model).__name__}: no MoE layers found — looked for blocks of the known "
            f"classes ({known}) or any block with a 'router'/'gate' linear and a fused "
            "'experts' module (transformers' @use_experts_implementation)"
        )
    counts = {layer.num_experts for layer in layers}
    if len(counts) > 1:
        raise LensError(
            f"{type(model).__name__}: MoE layers have different expert counts {sorted(counts)}; "
            "a bundle needs one E for every layer"
        )
    return layers
