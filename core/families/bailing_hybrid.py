"""Bailing-Hybrid: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="bailing_hybrid",
    label="Bailing-Hybrid",
    block_classes=("BailingHybridMoE",),
    model_types=("bailing_hybrid",),
    layouts="per-expert, `gate.expert_bias`; shared experts untouched",
)
