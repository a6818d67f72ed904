"""Qwen2-MoE: softmax top-k plus an always-on shared expert that is never routed."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="qwen2_moe",
    label="Qwen2-MoE",
    router_attr="gate",
    block_classes=("Qwen2MoeSparseMoeBlock",),
    model_types=("qwen2_moe",),
    router_doc="`mlp.gate`",
    routing="softmax top-k, plus an always-on shared expert",
    collect_doc="softmax over E, top-k (renormalised if `norm_topk_prob`); the always-on "
    "shared expert is not routed and not recorded",
    masked_routing=softmax_top_k(always_renorm=False, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised if "
    "`norm_topk_prob`, cast back",
    prune=PruneSpec(
        layouts="per-expert; shared expert and its gate untouched",
        router_bias=False,
        untouched="the shared expert",
    ),
)
