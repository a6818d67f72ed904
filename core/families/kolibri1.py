"""Kolibri-1: top-k of the logits plus a correction bias, sigmoid weights."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import biased_logits_top_k_sigmoid

ADAPTER = FamilyAdapter(
    name="kolibri1",
    label="Kolibri-1",
    router_attr="gate",
    block_classes=("Kolibri1SparseMoeBlock",),
    model_types=("kolibri1",),
    router_doc="`mlp.gate`",
    routing="top-k of logits + correction bias; sigmoid weights (prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used (logits + correction bias, sigmoid weights)",
    masked_routing=biased_logits_top_k_sigmoid,
    masked_routing_doc="dropped experts' biased logits at −inf; top-k; sigmoid weights, renormalised if `norm_topk_prob`",
    prune=PruneSpec(
        layouts="per-expert, `moe.router.expert_bias`; shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
    ),
)
