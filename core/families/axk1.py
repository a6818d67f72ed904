"""A.X K1: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="axk1",
    label="A.X K1",
    block_classes=("AXK1MoE",),
    model_types=("axk1",),
)
