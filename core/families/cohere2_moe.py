"""Cohere2-MoE: top-k of the logits, then softmax over those k or sigmoid."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import logits_top_k_select_fn

ADAPTER = FamilyAdapter(
    name="cohere2_moe",
    label="Cohere2-MoE",
    router_attr="gate",
    block_classes=("Cohere2MoeSparseMoeBlock",),
    model_types=("cohere2_moe",),
    router_doc="`mlp.gate`",
    routing="top-k of logits, then softmax over k or sigmoid",
    collect_doc="softmax of all E logits; top-k of logits, softmax over k or sigmoid",
    masked_routing=logits_top_k_select_fn,
    masked_routing_doc="top-k of the masked logits, then softmax over k or sigmoid (`expert_selection_fn`)",
    prune=PruneSpec(layouts="per-expert", router_bias=False),
)
