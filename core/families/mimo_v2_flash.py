"""MiMo-V2-Flash: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="mimo_v2_flash",
    label="MiMo-V2-Flash",
    block_classes=("MiMoV2FlashMoE",),
    model_types=("mimo_v2_flash",),
)
