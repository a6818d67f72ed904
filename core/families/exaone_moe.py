"""EXAONE-MoE: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="exaone_moe",
    label="EXAONE-MoE",
    block_classes=("ExaoneMoeSparseMoEBlock",),
    model_types=("exaone_moe",),
)
