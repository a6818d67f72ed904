"""PhiMoE: sparsemixer top-k.

Collection only: evaluate refuses to mask it in memory and prune refuses it,
because its routing has not been checked against a pruned checkpoint.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="phimoe",
    label="PhiMoE",
    router_attr="router",
    block_classes=("PhimoeSparseMoeBlock",),
    model_types=("phimoe",),
    router_doc="`router`",
    routing="sparsemixer top-k",
    collect_doc="softmax of all E logits; top-k by sparsemixer",
)
