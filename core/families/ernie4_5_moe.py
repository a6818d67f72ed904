"""ERNIE-4.5-MoE: softmax over all experts; softmax plus a correction bias chooses the top-k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_biased_choice

ADAPTER = FamilyAdapter(
    name="ernie4_5_moe",
    label="ERNIE-4.5-MoE",
    router_attr="gate",
    block_classes=("Ernie4_5_MoeSparseMoeBlock",),
    model_types=("ernie4_5_moe",),
    router_doc="`mlp.gate` (correction bias `gate.moe_statics`)",
    routing="softmax; softmax + correction bias chooses top-k; weights renormalised",
    collect_doc="softmax over E; top-k chosen by softmax + correction bias, renormalised; shared "
    "experts not recorded",
    masked_routing=softmax_biased_choice,
    masked_routing_doc="softmax over all E of the masked logits; dropped experts' selection score "
    "at −inf; top-k; renormalised",
    prune=PruneSpec(
        layouts="per-expert, `moe_statics.e_score_correction_bias` [1, E]; shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
        top_k_key="moe_k",
    ),
)
