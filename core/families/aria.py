"""Aria (text): top-k of the raw logits, softmax over those k; shared experts always run."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import logits_top_k_softmax

ADAPTER = FamilyAdapter(
    name="aria",
    label="Aria",
    router_attr="router",
    block_classes=("AriaTextMoELayer",),
    model_types=("aria_text",),
    router_doc="`mlp.router`",
    routing="top-k of logits, softmax over k",
    collect_doc="softmax of all E logits; top-k of logits, softmax over k; shared experts not "
    "recorded",
    masked_routing=logits_top_k_softmax,
    masked_routing_doc="top-k of the masked logits, softmax over those k",
    prune=PruneSpec(
        layouts="fused `experts.fc1`/`fc2` ([E, in, out]); shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
        uneven="refused (one expert count per config, no router bias)",
        top_k_key="moe_topk",
    ),
)
