"""GPT-OSS: a biased router whose top-k is taken on the logits, softmax over those k."""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def route_masked(router: Any, logits: Any, dropped: Any) -> tuple:
    """Top-k of the masked logits (the bias is already in them), softmax over those k."""
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    top, index = torch.topk(masked, router.top_k, dim=-1)
    scores = torch.softmax(top, dim=1, dtype=top.dtype)
    return masked, scores, index


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
    masked_routing=route_masked,
    masked_routing_doc="top-k of the logits, softmax over those k",
    prune=PruneSpec(
        layouts="fused `gate_up_proj`/`down_proj` and biases; MXFP4 `*_blocks`/`*_scales` sliced",
        router_bias=True,
        uneven="padded with experts whose router bias makes them unreachable",
    ),
)
