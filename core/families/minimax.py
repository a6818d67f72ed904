"""MiniMax: softmax over all experts, top-k.

Collection only: evaluate refuses to mask it in memory and prune refuses it,
because its routing has not been checked against a pruned checkpoint.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="minimax",
    label="MiniMax",
    router_attr="gate",
    block_classes=("MiniMaxSparseMoeBlock",),
    model_types=("minimax",),
    router_doc="`mlp.gate`",
    routing="softmax over all experts, top-k",
    collect_doc="softmax over E, top-k, renormalised",
)
