"""Mellum: softmax over all experts, top-k, renormalised if ``norm_topk_prob``."""

from __future__ import annotations

from dataclasses import replace

from core.families.flex_olmo import ADAPTER as FLEX_OLMO

# Routes, masks and prunes exactly as FlexOlmo: only its names differ.
ADAPTER = replace(
    FLEX_OLMO,
    name="mellum",
    label="Mellum",
    block_classes=("MellumSparseMoeBlock",),
    model_types=("mellum",),
)
