"""Find every MoE block of a loaded model, with its family's adapter.

In transformers 5.x nearly every MoE block has the same shape: a router
child (``router`` or ``gate``) returning ``(dense_logits[T, E],
top_k_weights[T, k], top_k_index[T, k])`` and a fused ``experts`` child
that receives ``(hidden[T, H], top_k_index, top_k_weights)``. Blocks of a
listed class get their adapter from :data:`core.families.BY_BLOCK_CLASS`;
any other block with that common shape gets the ``generic`` adapter. No
torch import: this walks modules and reads attributes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import LensError
from core.families import BY_BLOCK_CLASS
from core.families.base import FamilyAdapter
from core.families.generic import generic_adapter, router_weight


@dataclass(frozen=True)
class MoeLayer:
    """One MoE block of a loaded model."""

    index: int  # 0-based among MoE blocks (the bundle's layer axis)
    name: str  # module path, e.g. "model.layers.3.mlp"
    block: Any
    router: Any
    experts: Any
    family: FamilyAdapter
    num_experts: int
    top_k: int


def _num_experts(block: Any, router: Any, experts: Any, family: FamilyAdapter) -> int | None:
    """The routed expert count: what the model's own modules say, else the router's rows.

    The modules' ``num_experts`` comes first because a router weight can have
    more rows than there are routed experts (Inkling scores its shared expert
    in the same matrix), and then the rows would be the wrong E. A family's own
    ``num_experts_attr`` comes before both: Zaya's E counts its skip expert, and
    Doge's block holds the count its embeddings and router do not.
    """
    for owner in (router, block) if family.num_experts_attr else ():
        value = getattr(owner, family.num_experts_attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for owner in (experts, router):
        # LongCat's total_experts counts its zero-computation (identity) experts, which the
        # router scores and selects like the others.
        for attr in ("total_experts", "num_experts"):
            value = getattr(owner, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    weight = router_weight(router)
    return int(weight.shape[0]) if weight is not None else None


#: Config keys of top-k, tried in order (Gemma-4: ``top_k_experts``; HunYuan: ``moe_topk``).
TOP_K_CONFIG_KEYS = ("num_experts_per_tok", "top_k_experts", "moe_topk", "moe_k")


def _top_k(block: Any, router: Any, config: Any) -> int | None:
    for owner in (router, block):
        value = getattr(owner, "top_k", None)
        if isinstance(value, int):
            return value
    text = config.get_text_config() if hasattr(config, "get_text_config") else None
    for source in (getattr(router, "config", None), config, text):
        for key in TOP_K_CONFIG_KEYS:
            value = getattr(source, key, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def adapter_of(block: Any) -> FamilyAdapter | None:
    """The adapter of one module if it is an MoE block (listed class or generic shape)."""
    return BY_BLOCK_CLASS.get(type(block).__name__) or generic_adapter(block)


def find_moe_layers(model: Any) -> list[MoeLayer]:
    """Every MoE block of ``model`` in forward order; a clear error if there is none."""
    config = getattr(model, "config", None)
    layers: list[MoeLayer] = []
    for name, module in model.named_modules():
        family = adapter_of(module)
        located = family.locate(module) if family is not None else None
        if family is None or located is None:
            continue
        router, experts = located
        num_experts = _num_experts(module, router, experts, family)
        top_k = _top_k(module, router, config)
        if num_experts is None or top_k is None:
            raise LensError(
                f"{name} ({type(module).__name__}): cannot tell its number of experts or top-k"
            )
        layers.append(
            MoeLayer(len(layers), name, module, router, experts, family, num_experts, top_k)
        )
    if not layers:
        known = ", ".join(sorted(BY_BLOCK_CLASS))
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
