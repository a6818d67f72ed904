"""HY-V4: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="hy_v4",
    label="HY-V4",
    block_classes=("HYV4MoE",),
    model_types=("hy_v4",),
    layouts="fused `gate_up_proj`/`down_proj`, `e_score_correction_bias`; shared experts untouched",
)
