"""Qwen3-Next: softmax top-k with a gated shared expert.

Collection only: evaluate refuses to mask it in memory and prune refuses it,
because its routing has not been checked against a pruned checkpoint.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="qwen3_next",
    label="Qwen3-Next",
    router_attr="gate",
    block_classes=("Qwen3NextSparseMoeBlock",),
    model_types=("qwen3_next",),
    router_doc="`mlp.gate`",
    routing="softmax over all experts, top-k",
    collect_doc="softmax over E, top-k (renormalised if `norm_topk_prob`); the shared expert is not recorded",
)
