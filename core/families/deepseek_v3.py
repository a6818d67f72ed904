"""DeepSeek-V3: sigmoid scores, correction bias, group-limited top-k, scaled weights."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_grouped_top_k

ADAPTER = FamilyAdapter(
    name="deepseek_v3",
    label="DeepSeek-V3",
    router_attr="gate",
    block_classes=("DeepseekV3MoE",),
    model_types=("deepseek_v3", "sarvam_mla"),
    router_doc="`mlp.gate`",
    routing="sigmoid scores + correction bias, grouped top-k (prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k, weights and counts are what the "
    "model used (sigmoid + correction bias, grouped top-k, scaling factor)",
    masked_routing=sigmoid_grouped_top_k,
    masked_routing_doc="sigmoid scores; dropped experts' *selection* score at −inf "
    "(sigmoid(−inf) + correction bias would still be selectable); group-limited top-k; "
    "weights renormalised and scaled",
    prune=PruneSpec(
        layouts="per-expert, `e_score_correction_bias`; shared experts untouched",
        router_bias=False,
        grouped_routing=True,
        untouched="the shared experts and dense layers",
        uneven="refused; masks must keep the same number of experts in every routing group "
        "(`lens mask --groups 8`), unless grouping selects every group anyway",
    ),
)
