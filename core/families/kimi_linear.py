"""Kimi-Linear: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="kimi_linear",
    label="Kimi-Linear",
    block_classes=("KimiLinearMoE",),
    model_types=("kimi_linear",),
    layouts="per-expert `w1`/`w2`/`w3`, `e_score_correction_bias`; shared experts untouched",
)
