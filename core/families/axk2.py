"""A.X K2: sigmoid scores + correction bias, top-k within groups when the config sets
``n_group`` (A.X K2-Light has none); unselected groups score 0.0, not −inf, as in its
reference code; weights renormalised and scaled in the router."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_bias_optional_groups

ADAPTER = FamilyAdapter(
    name="axk2",
    label="A.X K2",
    router_attr="gate",
    block_classes=("AXK2MoE",),
    model_types=("axk2",),
    router_doc="`mlp.gate`",
    routing="sigmoid scores + correction bias, top-k (within groups if n_group is set; "
    "prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k, weights and counts are what the "
    "model used (sigmoid + correction bias, optional groups, scaling factor)",
    masked_routing=sigmoid_bias_optional_groups(unselected=0.0, scaled=True),
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf, also after "
    "unselected groups are filled with 0.0; weights renormalised and scaled",
    prune=PruneSpec(
        layouts="per-expert, `gate.e_score_correction_bias`; shared experts untouched",
        router_bias=False,
        grouped_routing=True,
        untouched="the shared experts and dense layers",
        uneven="refused; with groups, the same number of experts in every group "
        "(`lens mask --groups`)",
    ),
)
