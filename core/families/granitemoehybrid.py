"""Granite-MoE-hybrid (Granite 4): Mamba + attention layers, each with a Granite-MoE block.

It routes and masks as Granite-MoE (top-k of the logits, softmax over those k); the
always-on ``shared_mlp`` beside every MoE block and the Mamba mixers are not experts.
"""

from __future__ import annotations

from dataclasses import replace

from core.families.granitemoe import ADAPTER as GRANITE

ADAPTER = replace(
    GRANITE,
    name="granitemoehybrid",
    label="Granite-MoE-hybrid",
    block_classes=("GraniteMoeHybridMoE",),
    model_types=("granitemoehybrid",),
    collect_doc=GRANITE.collect_doc + "; the shared MLP beside each block is not recorded",
    prune=replace(GRANITE.prune, untouched="the shared MLP and the Mamba layers"),
)
