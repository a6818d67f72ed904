"""Granite-MoE with a shared expert (``shared_mlp``, left as is): top-k of the logits, softmax over k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import logits_top_k_softmax

ADAPTER = FamilyAdapter(
    name="granitemoeshared",
    label="Granite-MoE (shared)",
    router_attr="router",
    block_classes=("GraniteMoeSharedMoE",),
    model_types=("granitemoeshared",),
    router_doc="`block_sparse_moe.router`",
    routing="top-k of logits, softmax over k",
    collect_doc="top-k of logits, softmax over k",
    masked_routing=logits_top_k_softmax,
    masked_routing_doc="top-k of the masked logits, softmax over those k",
    prune=PruneSpec(
        layouts="fused `input_linear`/`output_linear`, router `router.layer`",
        router_bias=False,
        untouched="the shared expert",
    ),
)
