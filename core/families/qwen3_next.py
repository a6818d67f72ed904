"""Qwen3-Next: softmax top-k (renormalised if ``norm_topk_prob``) plus a gated shared expert."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="qwen3_next",
    label="Qwen3-Next",
    router_attr="gate",
    block_classes=("Qwen3NextSparseMoeBlock",),
    model_types=("qwen3_next",),
    router_doc="`mlp.gate`",
    routing="softmax top-k, plus a gated shared expert",
    collect_doc="softmax over E, top-k (renormalised if `norm_topk_prob`); the shared expert is "
    "not recorded",
    masked_routing=softmax_top_k(always_renorm=False, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised if `norm_topk_prob`, "
    "cast back",
    prune=PruneSpec(
        layouts="per-expert; shared expert and its gate untouched",
        router_bias=False,
        untouched="the shared expert",
    ),
)
