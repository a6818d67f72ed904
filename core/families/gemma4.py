"""Gemma-4 (MoE variants): router and experts sit in the decoder layer; the router returns
its softmax, and the weights are the renormalised top-k times a per-expert scale.

Collection only: the router's first output is already the probability over all
E experts, so ``prob_sum`` is that output (``router_output="probs"``), not a
softmax of it. Evaluation and pruning refuse it (its router and experts live
directly in the decoder layer, a checkpoint layout pruning does not read).
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

ADAPTER = FamilyAdapter(
    name="gemma4",
    label="Gemma-4 (MoE)",
    router_attr="router",
    block_classes=("Gemma4TextDecoderLayer",),
    model_types=("gemma4", "gemma4_text"),
    router_doc="`layers.N.router.proj`",
    routing="softmax over all experts, top-k, renormalised, times a per-expert scale",
    collect_doc="the router's own softmax over E; top-k and weights are what the model used "
    "(renormalised, per-expert scale)",
    router_output="probs",
    no_prune_reason="its router and experts sit directly in the decoder layer and its masked "
    "routing has not been checked against a pruned checkpoint; collect works",
)
