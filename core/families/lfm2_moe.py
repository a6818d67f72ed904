"""LFM2-MoE: sigmoid scores, optionally an expert bias held by the block, scaled weights."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_optional_bias_top_k

ADAPTER = FamilyAdapter(
    name="lfm2_moe",
    label="LFM2-MoE",
    router_attr="gate",
    block_classes=("Lfm2MoeSparseMoeBlock",),
    model_types=("lfm2_moe",),
    router_doc="`feed_forward.gate` (expert bias `feed_forward.expert_bias`)",
    routing="sigmoid scores (+ expert bias) choose top-k; weights renormalised and scaled "
    "(prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(sigmoid + expert bias, renormalised, scaled)",
    masked_routing=sigmoid_optional_bias_top_k,
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; top-k; weights "
    "renormalised and scaled",
    prune=PruneSpec(
        layouts="per-expert `w1`/`w2`/`w3` under `feed_forward`, `expert_bias`",
        router_bias=False,
    ),
)
