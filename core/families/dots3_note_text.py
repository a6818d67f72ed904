"""dots3 (dots3.note's language model): DeepSeek-V3's routing with a shared expert.

Its router (``Dots3NoteTextTopkRouter``) is DeepSeek-V3's line for line: sigmoid
scores plus a correction bias choose within the best groups, weights renormalised
and scaled. The multimodal ``dots3_note`` wraps the same text blocks (its vision
tower's MoE is not the language model's and is not listed here).
"""

from __future__ import annotations

from core.families.deepseek_v3 import deepseek_v3_style

ADAPTER = deepseek_v3_style(
    name="dots3_note_text",
    label="dots3 (text)",
    block_classes=("Dots3NoteTextMoE",),
    model_types=("dots3_note_text", "dots3_note"),
    layouts="per-expert `gate_proj`/`up_proj`/`down_proj` as saved, `e_score_correction_bias`; "
    "shared experts untouched",
)
