"""Solar-Open: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_grouped_top_k

ADAPTER = FamilyAdapter(
    name="solar_open",
    label="Solar-Open",
    router_attr="gate",
    block_classes=("SolarOpenMoE",),
    model_types=("solar_open",),
    router_doc="`mlp.gate`",
    routing="sigmoid scores + correction bias, grouped top-k (prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k, weights and counts are what the "
    "model used (sigmoid + correction bias, grouped top-k, scaling factor)",
    masked_routing=sigmoid_grouped_top_k,
    masked_routing_doc="as DeepSeek-V3: dropped experts' selection score at −inf, group-limited "
    "top-k, weights renormalised and scaled",
    prune=PruneSpec(
        layouts="per-expert, `e_score_correction_bias`; shared experts untouched",
        router_bias=False,
        grouped_routing=True,
        untouched="the shared experts and dense layers",
        uneven="refused; same number of experts in every routing group (`lens mask --groups`)",
    ),
)
