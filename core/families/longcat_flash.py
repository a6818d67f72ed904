"""LongCat-Flash: softmax + correction bias routing over routed *and* zero-computation experts.

Its router (``router.classifier``) scores ``n_routed_experts + zero_expert_num``
experts; the zero-computation ones return their input unchanged. The bundle's
E counts both (ids ≥ ``n_routed_experts`` are the identity experts), so a mask
can drop either kind.

Pruning slices the router's ``classifier`` rows and correction bias by the kept
ids, and the experts the same way: saved per expert (the released layout,
zero-computation experts holding an unused ``gate_proj``/``up_proj`` and no
``down_proj``), kept experts are renumbered in order; fused, ``gate_up_proj`` (a
row for every expert of both kinds) is sliced by the kept ids and ``down_proj``
(routed experts only) by the kept routed ids. Zero-computation experts hold no weights, so which ones a layer keeps does
not matter, only how many: the config's ``n_routed_experts`` and ``zero_expert_num``
become the kept counts of each kind, which must be the same in every layer.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.layouts import IdentityExperts
from core.families.routing import softmax_biased_choice_scaled

ADAPTER = FamilyAdapter(
    name="longcat_flash",
    label="LongCat-Flash",
    router_attr="router",
    block_classes=("LongcatFlashMoE",),
    model_types=("longcat_flash",),
    router_doc="`mlp.router.classifier` (routed + zero-computation experts)",
    routing="softmax over routed + zero-computation experts; softmax + correction bias chooses "
    "top-k; weights scaled",
    collect_doc="softmax over all routed and zero-computation (identity) experts; E counts both",
    masked_routing=softmax_biased_choice_scaled,
    masked_routing_doc="softmax of the masked logits; dropped experts' selection score at −inf; "
    "top-k; weights scaled (zero-computation experts can be dropped too)",
    prune=PruneSpec(
        layouts="per-expert (zero-computation experts without `down_proj`) or fused; router "
        "`router.classifier` and `e_score_correction_bias` sliced over routed + "
        "zero-computation experts (fused `down_proj` over the routed ones); `n_routed_experts` "
        "and `zero_expert_num` rewritten",
        router_bias=False,
        uneven="refused, and every layer must keep the same number of routed experts "
        "(one count of each kind in the config)",
        layout=IdentityExperts(label="zero-computation experts", count_key="zero_expert_num"),
    ),
)
