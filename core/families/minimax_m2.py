"""MiniMax-M2: sigmoid scores plus a correction bias held by the block choose the top-k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_bias_top_k

ADAPTER = FamilyAdapter(
    name="minimax_m2",
    label="MiniMax-M2",
    router_attr="gate",
    block_classes=("MiniMaxM2SparseMoeBlock",),
    model_types=("minimax_m2",),
    router_doc="`mlp.gate` (correction bias `mlp.e_score_correction_bias`)",
    routing="sigmoid scores + correction bias choose top-k; weights renormalised "
    "(prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(sigmoid + correction bias, renormalised)",
    masked_routing=sigmoid_bias_top_k(),
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; top-k; weights "
    "renormalised",
    prune=PruneSpec(
        layouts="per-expert `w1`/`w2`/`w3`, the block's `e_score_correction_bias`",
        router_bias=False,
    ),
)
