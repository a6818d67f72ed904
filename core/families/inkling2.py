"""Inkling-2 (and its looped variant): the config's scoring function (sigmoid) + correction
bias choose the top-k; weights are the chosen scores renormalised, times the route scale."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import scored_bias_top_k

ADAPTER = FamilyAdapter(
    name="inkling2",
    label="Inkling-2",
    router_attr="gate",
    block_classes=("Inkling2SparseMoeBlock", "Inkling2LoopSparseMoeBlock"),
    model_types=("inkling2_text", "inkling2_loop_text"),
    router_doc="`mlp.gate`",
    routing="sigmoid scores + correction bias choose top-k; weights renormalised and scaled "
    "(prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(sigmoid + correction bias, renormalised, scaled)",
    masked_routing=scored_bias_top_k,
    masked_routing_doc="the config's scoring function; dropped experts' selection score at −inf; "
    "top-k; weights renormalised and scaled",
    prune=PruneSpec(
        layouts="fused `experts.gate_up_proj`/`down_proj`, `gate.e_score_correction_bias`",
        router_bias=False,
        uneven="refused (one expert count per config, no router bias)",
    ),
)
