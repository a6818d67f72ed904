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


def deepseek_v3_style(
    *,
    name: str,
    label: str,
    block_classes: tuple[str, ...],
    model_types: tuple[str, ...],
    router_doc: str = "`mlp.gate`",
    layouts: str | None = None,
) -> FamilyAdapter:
    """A family that routes, masks and prunes exactly as DeepSeek-V3 (GLM-4.5+, dots1, …).

    Its block and config names differ (and where its router and per-expert tensors sit:
    ``router_doc``, ``layouts``); everything the adapter says about routing and pruning
    is DeepSeek-V3's, stated once here rather than copied into each file.
    """
    return FamilyAdapter(
        name=name,
        label=label,
        router_attr="gate",
        block_classes=block_classes,
        model_types=model_types,
        router_doc=router_doc,
        routing=ADAPTER.routing,
        collect_doc=ADAPTER.collect_doc,
        masked_routing=sigmoid_grouped_top_k,
        masked_routing_doc="as DeepSeek-V3: dropped experts' selection score at −inf, group-limited "
        "top-k, weights renormalised and scaled",
        prune=PruneSpec(
            layouts=layouts or ADAPTER.prune.layouts,
            router_bias=False,
            grouped_routing=True,
            untouched=ADAPTER.prune.untouched,
            uneven="refused; same number of experts in every routing group (`lens mask --groups`)",
        ),
    )
