"""Gemma-4 (MoE variants): router and experts sit in the decoder layer; the router returns
its softmax, and the weights are the renormalised top-k times a per-expert scale.

The router's first output is already the probability over all E experts, so
``prob_sum`` is that output (``router_output="probs"``), not a softmax of it,
and masked routing starts from those probabilities too: zeroing the dropped
experts and renormalising is the softmax over the kept experts' logits (the
normaliser cancels in the top-k renormalisation anyway).
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def kept_probs_top_k_scaled(router: Any, probs: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Top-k of the kept experts' probabilities, renormalised over the k, times the chosen
    experts' ``per_expert_scale``; the probabilities returned are renormalised over the kept."""
    import torch  # lazy: only evaluation runs routing

    kept = probs.masked_fill(dropped, 0.0)
    top, index = torch.topk(kept, k=router.config.top_k_experts, dim=-1)
    weights = top / top.sum(dim=-1, keepdim=True)
    weights = weights * router.per_expert_scale[index]
    return kept / kept.sum(dim=-1, keepdim=True), weights, index


ADAPTER = FamilyAdapter(
    name="gemma4",
    label="Gemma-4 (MoE)",
    router_attr="router",
    block_classes=("Gemma4TextDecoderLayer",),
    model_types=("gemma4", "gemma4_text"),
    router_doc="`layers.N.router.proj`",
    routing="softmax over all experts, top-k, renormalised, times a per-expert scale",
    collect_doc="the router's own softmax over E; top-k and weights are what the model used "
    "(renormalised, per-expert scale)",
    router_output="probs",
    masked_routing=kept_probs_top_k_scaled,
    masked_routing_doc="the router's probabilities with dropped experts at 0, top-k, "
    "renormalised, times the per-expert scale",
    prune=PruneSpec(
        layouts="fused `experts.gate_up_proj`/`down_proj` and `router.proj`, "
        "`router.per_expert_scale` directly in the decoder layer",
        router_bias=False,
        untouched="the dense MLP beside the experts",
        uneven="refused (one expert count per config, no router bias)",
        top_k_key="top_k_experts",
    ),
)
