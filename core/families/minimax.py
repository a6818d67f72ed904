"""MiniMax(-Text-01): softmax over all experts, top-k, renormalised (float32 weights)."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="minimax",
    label="MiniMax",
    router_attr="gate",
    block_classes=("MiniMaxSparseMoeBlock",),
    model_types=("minimax",),
    router_doc="`mlp.gate`",
    routing="softmax top-k, renormalised",
    collect_doc="softmax over E, top-k, renormalised",
    masked_routing=softmax_top_k(always_renorm=True, cast=False),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised (float32 weights)",
    prune=PruneSpec(layouts="per-expert `w1`/`w2`/`w3`", router_bias=False),
)
