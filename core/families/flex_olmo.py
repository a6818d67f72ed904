"""FlexOlmo: softmax over all experts, top-k, renormalised if ``norm_topk_prob``."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="flex_olmo",
    label="FlexOlmo",
    router_attr="gate",
    block_classes=("FlexOlmoSparseMoeBlock",),
    model_types=("flex_olmo",),
    router_doc="`mlp.gate`",
    collect_doc="softmax over E, top-k (renormalised if `norm_topk_prob`)",
    masked_routing=softmax_top_k(always_renorm=False, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised if `norm_topk_prob`, "
    "cast back",
    prune=PruneSpec(layouts="per-expert", router_bias=False),
)
