"""Granite-MoE with sliding-window attention: top-k of the logits, softmax over k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import logits_top_k_softmax

ADAPTER = FamilyAdapter(
    name="granitemoe_swa",
    label="Granite-MoE (SWA)",
    router_attr="router",
    block_classes=("GraniteMoeSWAMoE",),
    model_types=("granitemoe_swa",),
    router_doc="`block_sparse_moe.router`",
    routing="top-k of logits, softmax over k",
    collect_doc="top-k of logits, softmax over k",
    masked_routing=logits_top_k_softmax,
    masked_routing_doc="top-k of the masked logits, softmax over those k",
    prune=PruneSpec(
        layouts="fused `gate_up_proj`/`down_proj` under `block_sparse_moe`", router_bias=False
    ),
)
