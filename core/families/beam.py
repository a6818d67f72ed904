"""Beam: DeepSeek-style grouped routing (sigmoid + correction bias, unselected groups at
−inf), weights renormalised; ``routed_scaling_factor`` scales the block's output, not the
router's weights."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_bias_optional_groups

ADAPTER = FamilyAdapter(
    name="beam",
    label="Beam",
    router_attr="gate",
    block_classes=("BeamMoE",),
    model_types=("beam",),
    router_doc="`mlp.gate`",
    routing="sigmoid scores + correction bias, grouped top-k (prob_sum is the softmax of the "
    "logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k, weights and counts are what the "
    "model used (sigmoid + correction bias, grouped top-k; the scale is on the block output)",
    masked_routing=sigmoid_bias_optional_groups(unselected=float("-inf"), scaled=False),
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; group-limited "
    "top-k; weights renormalised (the block scales its output)",
    prune=PruneSpec(
        layouts="per-expert, `gate.e_score_correction_bias`",
        router_bias=False,
        grouped_routing=True,
        untouched="the dense layers",
        uneven="refused; same number of experts in every routing group (`lens mask --groups`)",
    ),
)
