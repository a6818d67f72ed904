"""Lara-Mini: softmax over all experts in float32, top-k, renormalised if ``norm_topk_prob``."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="lara_mini",
    label="Lara-Mini",
    router_attr="gate",
    block_classes=("LaraMiniSparseMoeBlock",),
    model_types=("lara_mini",),
    router_doc="`mlp.gate`",
    routing="softmax top-k (float32 logits), plus a shared expert",
    collect_doc="softmax over E, top-k (renormalised if `norm_topk_prob`); the shared expert is not recorded",
    masked_routing=softmax_top_k(always_renorm=False, cast=True, to_input=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised if `norm_topk_prob`, in the input's dtype",
    prune=PruneSpec(
        layouts="fused `gate_up_proj`/`down_proj`; shared expert untouched",
        router_bias=False,
        untouched="the shared expert",
    ),
)
