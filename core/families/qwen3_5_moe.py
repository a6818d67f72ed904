"""Qwen3.5-MoE: softmax over all experts, top-k, always renormalised, plus a shared expert."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="qwen3_5_moe",
    label="Qwen3.5-MoE",
    router_attr="gate",
    block_classes=("Qwen3_5MoeSparseMoeBlock",),
    model_types=("qwen3_5_moe", "qwen3_5_moe_text"),
    router_doc="`mlp.gate`",
    routing="softmax top-k, renormalised, plus a gated shared expert",
    collect_doc="softmax over E, top-k, renormalised; the shared expert is not recorded",
    masked_routing=softmax_top_k(always_renorm=True, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised, cast back",
    prune=PruneSpec(
        layouts="per-expert; shared expert and its gate untouched",
        router_bias=False,
        untouched="the shared expert",
    ),
)
