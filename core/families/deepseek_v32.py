"""DeepSeek-V3.2: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="deepseek_v32",
    label="DeepSeek-V3.2",
    block_classes=("DeepseekV32MoE",),
    model_types=("deepseek_v32",),
)
