"""Laguna: sigmoid of soft-capped logits plus a correction bias chooses the top-k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_router_bias_top_k

ADAPTER = FamilyAdapter(
    name="laguna",
    label="Laguna",
    router_attr="gate",
    block_classes=("LagunaSparseMoeBlock",),
    model_types=("laguna",),
    router_doc="`mlp.gate`",
    routing="sigmoid (+ soft-cap) + correction bias chooses top-k; weights renormalised (prob_sum is the softmax of the logits)",
    collect_doc="softmax of the (soft-capped) logits for `prob_sum`; top-k and weights are what the model used (sigmoid + correction bias, renormalised)",
    masked_routing=sigmoid_router_bias_top_k,
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; top-k; renormalised",
    prune=PruneSpec(
        layouts="per-expert, `e_score_correction_bias`; shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
    ),
)
