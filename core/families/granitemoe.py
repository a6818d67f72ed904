"""Granite-MoE: top-k of the logits, softmax over those k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import logits_top_k_softmax

ADAPTER = FamilyAdapter(
    name="granitemoe",
    label="Granite-MoE",
    router_attr="router",
    block_classes=("GraniteMoeMoE",),
    model_types=("granitemoe",),
    router_doc="`block_sparse_moe.router`",
    routing="top-k of logits, softmax over k",
    collect_doc="top-k of logits, softmax over k",
    masked_routing=logits_top_k_softmax,
    masked_routing_doc="top-k of the masked logits, softmax over those k",
    prune=PruneSpec(
        layouts="fused `input_linear`/`output_linear`, router `router.layer`", router_bias=False
    ),
)
