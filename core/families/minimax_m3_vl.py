"""MiniMax-M3-VL (text): MiniMax-M2's routing with the correction bias in the router:
sigmoid scores (float32) + bias choose the top-k, weights renormalised in float32."""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def sigmoid_router_bias_renorm(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Top-k of sigmoid(logits) + the router's correction bias with dropped experts at −inf;
    weights are the chosen sigmoid scores over their sum, kept in float32 as the model does."""
    import torch  # lazy: only evaluation runs routing

    scores = torch.sigmoid(logits.float())
    choice = (scores + router.e_score_correction_bias).masked_fill(dropped, float("-inf"))
    index = torch.topk(choice, router.top_k, dim=-1, sorted=False)[1]
    weights = scores.gather(1, index)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return logits.masked_fill(dropped, float("-inf")), weights, index


ADAPTER = FamilyAdapter(
    name="minimax_m3_vl",
    label="MiniMax-M3-VL",
    router_attr="gate",
    block_classes=("MiniMaxM3VLSparseMoeBlock",),
    model_types=("minimax_m3_vl_text",),
    router_doc="`mlp.gate` (correction bias `mlp.gate.e_score_correction_bias`)",
    routing="sigmoid scores + correction bias choose top-k; weights renormalised "
    "(prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(sigmoid + correction bias, renormalised); shared experts not recorded",
    masked_routing=sigmoid_router_bias_renorm,
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; top-k; weights "
    "renormalised (float32)",
    prune=PruneSpec(
        layouts="fused `experts.gate_up_proj`/`down_proj`, `gate.e_score_correction_bias`; "
        "shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
        uneven="refused (one expert count per config, no router bias)",
    ),
)
