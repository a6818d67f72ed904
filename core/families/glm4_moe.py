"""GLM-4.5+ (GLM-4-MoE): DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="glm4_moe",
    label="GLM-4.5+ (GLM-4-MoE)",
    block_classes=("Glm4MoeMoE", "Glm4MoeLiteMoE"),
    model_types=("glm4_moe", "glm4_moe_lite", "sarvam_moe"),
)
