"""Granite-MoE: top-k of the logits, softmax over those k.

Collection only: evaluate refuses to mask it in memory and prune refuses it,
because its routing has not been checked against a pruned checkpoint.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="granitemoe",
    label="Granite-MoE",
    router_attr="router",
    block_classes=("GraniteMoeMoE",),
    model_types=("granitemoe",),
    router_doc="`router`",
    routing="top-k of logits, softmax over k",
    collect_doc="top-k of logits, softmax over k",
)
