"""Jamba: softmax over all experts, top-k, not renormalised (Mamba/attention hybrid)."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="jamba",
    label="Jamba",
    router_attr="router",
    block_classes=("JambaSparseMoeBlock",),
    model_types=("jamba",),
    router_doc="`feed_forward.router`",
    routing="softmax top-k (not renormalised)",
    collect_doc="softmax over E, top-k",
    masked_routing=softmax_top_k(always_renorm=False, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, cast back (not renormalised)",
    prune=PruneSpec(layouts="per-expert under `feed_forward`", router_bias=False),
)
