"""AFMoE: sigmoid scores plus the block's expert bias choose; weights renormalised and scaled."""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import sigmoid_bias_top_k

ADAPTER = FamilyAdapter(
    name="afmoe",
    label="AFMoE",
    router_attr="router",
    block_classes=("AfmoeSparseMoeBlock",),
    model_types=("afmoe",),
    router_doc="`mlp.router.gate` (expert bias `mlp.expert_bias`)",
    routing="sigmoid scores + expert bias choose top-k; weights renormalised and scaled "
    "(prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(sigmoid + expert bias, renormalised, `route_scale`); shared experts not recorded",
    masked_routing=sigmoid_bias_top_k(eps=1e-20, scale="route_scale"),
    masked_routing_doc="sigmoid scores; dropped experts' selection score at −inf; top-k; weights "
    "renormalised and scaled",
    prune=PruneSpec(
        layouts="per-expert, router `router.gate`, `expert_bias`; shared experts untouched",
        router_bias=False,
        untouched="the shared experts",
    ),
)
