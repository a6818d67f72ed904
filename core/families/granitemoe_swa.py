"""Granite-MoE with sliding-window attention: top-k of the logits, softmax over k."""

from __future__ import annotations

from dataclasses import replace

from core.families.granitemoe import ADAPTER as GRANITE

# Routes and masks as Granite-MoE; only its names and what pruning says differ.
ADAPTER = replace(
    GRANITE,
    name="granitemoe_swa",
    label="Granite-MoE (SWA)",
    block_classes=("GraniteMoeSWAMoE",),
    model_types=("granitemoe_swa",),
    prune=replace(
        GRANITE.prune, layouts="fused `gate_up_proj`/`down_proj` under `block_sparse_moe`"
    ),
)
