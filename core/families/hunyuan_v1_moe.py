"""HunYuan-V1-MoE: softmax over all experts, top-k, renormalised; router linear ``gate.wg``."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="hunyuan_v1_moe",
    label="HunYuan-V1-MoE",
    router_attr="gate",
    block_classes=("HunYuanMoEV1Moe",),
    model_types=("hunyuan_v1_moe",),
    router_doc="`mlp.gate.wg`",
    routing="softmax top-k, renormalised, plus a shared MLP",
    collect_doc="softmax over E, top-k, renormalised; the shared MLP is not recorded",
    masked_routing=softmax_top_k(always_renorm=True, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised, cast back",
    prune=PruneSpec(
        layouts="per-expert, router `gate.wg`; shared MLP untouched",
        router_bias=False,
        untouched="the shared MLP",
        top_k_key="moe_topk",
    ),
)
