"""Nemotron-H: DeepSeek-V3's routing (sigmoid scores + correction bias, grouped top-k, scaled weights)."""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="nemotron_h",
    label="Nemotron-H",
    block_classes=("NemotronHMoE",),
    model_types=("nemotron_h",),
    router_doc="`mixer.gate`",
    layouts="per-expert `up_proj`/`down_proj` under `mixer`, `e_score_correction_bias`; shared experts untouched",
)
