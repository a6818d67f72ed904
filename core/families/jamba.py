"""Jamba (Mamba + attention hybrid): softmax over all experts, top-k.

Collection only: evaluate refuses to mask it in memory and prune refuses it,
because its routing has not been checked against a pruned checkpoint.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="jamba",
    label="Jamba",
    router_attr="router",
    block_classes=("JambaSparseMoeBlock",),
    model_types=("jamba",),
    router_doc="`router`",
    routing="softmax over all experts, top-k",
    collect_doc="softmax over E, top-k",
)
