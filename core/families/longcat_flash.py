"""LongCat-Flash: softmax + correction bias routing over routed *and* zero-computation experts.

Its router (``router.classifier``) scores ``n_routed_experts + zero_expert_num``
experts; the zero-computation ones return their input unchanged. The bundle's
E counts both (ids ≥ ``n_routed_experts`` are the identity experts), so a mask
can drop either kind. Pruning refuses it: its fused ``gate_up_proj`` has a row
per expert of both kinds while ``down_proj`` has only the routed ones, and the
config cannot say which zero-computation experts were kept.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter
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
    no_prune_reason="its fused gate_up_proj has a row for every routed and zero-computation "
    "expert but down_proj only for the routed ones, and the config cannot say which "
    "zero-computation experts were kept; lens evaluate applies such masks in memory",
)
