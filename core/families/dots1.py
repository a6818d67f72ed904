"""dots.llm1: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="dots1",
    label="dots.llm1",
    block_classes=("Dots1MoE",),
    model_types=("dots1",),
)
