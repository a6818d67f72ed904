"""Granite-MoE with a shared expert (``shared_mlp``, left as is): top-k of the logits, softmax over k."""

from __future__ import annotations

from dataclasses import replace

from core.families.granitemoe import ADAPTER as GRANITE

# Routes and masks as Granite-MoE; only its names and what pruning says differ.
ADAPTER = replace(
    GRANITE,
    name="granitemoeshared",
    label="Granite-MoE (shared)",
    block_classes=("GraniteMoeSharedMoE",),
    model_types=("granitemoeshared",),
    prune=replace(GRANITE.prune, untouched="the shared expert"),
)
