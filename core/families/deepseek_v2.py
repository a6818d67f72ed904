"""DeepSeek-V2: softmax over all experts, (group-limited) greedy top-k, scaled weights."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_greedy_scaled

ADAPTER = FamilyAdapter(
    name="deepseek_v2",
    label="DeepSeek-V2",
    router_attr="gate",
    block_classes=("DeepseekV2Moe",),
    model_types=("deepseek_v2",),
    router_doc="`mlp.gate`",
    routing="softmax, (group-limited) greedy top-k, scaled",
    collect_doc="softmax, (group-limited) greedy top-k",
    masked_routing=softmax_greedy_scaled,
    masked_routing_doc="softmax over all E of the masked logits; (group-limited) greedy top-k; weights scaled",
    prune=PruneSpec(
        layouts="per-expert; shared experts untouched",
        router_bias=False,
        grouped_routing=True,
        untouched="the shared experts and dense layers",
        uneven="refused; same number of experts in every routing group (`lens mask --groups`)",
    ),
)
