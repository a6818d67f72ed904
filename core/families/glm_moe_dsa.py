"""GLM-MoE-DSA: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="glm_moe_dsa",
    label="GLM-MoE-DSA",
    block_classes=("GlmMoeDsaMoE",),
    model_types=("glm_moe_dsa",),
)
