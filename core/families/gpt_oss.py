"""GPT-OSS: a biased router whose top-k is taken on the logits, softmax over those k."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import logits_top_k_softmax

ADAPTER = FamilyAdapter(
    name="gpt_oss",
    label="GPT-OSS",
    router_attr="router",
    block_classes=("GptOssMLP",),
    model_types=("gpt_oss",),
    router_doc="`mlp.router` (with bias)",
    routing="top-k of logits (with bias), softmax over k",
    collect_doc="softmax of all E logits; top-k of logits, softmax over k (MXFP4 checkpoints "
    "are loaded dequantised so the router is visible)",
    masked_routing=logits_top_k_softmax,
    masked_routing_doc="top-k of the logits, softmax over those k",
    prune=PruneSpec(
        layouts="fused `gate_up_proj`/`down_proj` and biases; MXFP4 `*_blocks`/`*_scales` sliced",
        router_bias=True,
        uneven="padded with experts whose router bias makes them unreachable",
    ),
)
