"""HY-V3 (Hunyuan): sigmoid scores plus the block's correction bias choose; scaled weights."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_bias_top_k

ADAPTER = FamilyAdapter(
    name="hy_v3",
    label="HY-V3",
    router_attr="gate",
    block_classes=("HYV3MoE",),
    model_types=("hy_v3",),
    router_doc="`mlp.gate` (correction bias `mlp.e_score_correction_bias`)",
    routing="sigmoid scores + correction bias choose top-k; weights renormalised and scaled "
    "(prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(sigmoid + correction bias, renormalised, scaled); shared experts not recorded",
    masked_routing=sigmoid_bias_top_k(eps=1e-20, scale="router_scaling_factor"),
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; top-k; weights "
    "renormalised and scaled",
    prune=PruneSpec(
        layouts="per-expert, router `gate`, `e_score_correction_bias`; shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
    ),
)
