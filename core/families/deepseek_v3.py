"""DeepSeek-V3: sigmoid scores, correction bias, group-limited top-k, scaled weights."""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def route_masked(router: Any, logits: Any, dropped: Any) -> tuple:
    """DeepSeek-V3's routing with the dropped experts' *selection* score at −inf.

    Masking the logits alone would not do: sigmoid(−inf) plus the correction
    bias is still a finite, selectable score.
    """
    import torch  # lazy: only evaluation runs routing

    experts = logits.shape[-1]
    groups = router.num_group
    scores = logits.sigmoid()
    choice = (scores + router.e_score_correction_bias).masked_fill(dropped, float("-inf"))
    group_scores = choice.view(-1, groups, experts // groups).topk(2, dim=-1)[0].sum(dim=-1)
    group_index = torch.topk(group_scores, k=router.topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores)
    group_mask.scatter_(1, group_index, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
    choice = choice.masked_fill(~score_mask.bool(), float("-inf"))
    index = torch.topk(choice, k=router.top_k, dim=-1, sorted=False)[1]
    weights = scores.gather(1, index)
    if router.norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    weights = weights * router.routed_scaling_factor
    return logits.masked_fill(dropped, float("-inf")), weights, index


ADAPTER = FamilyAdapter(
    name="deepseek_v3",
    label="DeepSeek-V3",
    router_attr="gate",
    block_classes=("DeepseekV3MoE",),
    model_types=("deepseek_v3",),
    router_doc="`mlp.gate`",
    routing="sigmoid scores + correction bias, grouped top-k (prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k, weights and counts are what the "
    "model used (sigmoid + correction bias, grouped top-k, scaling factor)",
    masked_routing=route_masked,
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
