"""Qwen4-Exp: Qwen3-Next's MoE block (softmax top-k plus a gated shared expert) in a model
with hyper-connection residual streams; ``qwen4_exp`` wraps the same text model.

The router (``Qwen4ExpTextTopKRouter``) is Qwen3-Next's: softmax over all E in float32,
top-k, renormalised if ``norm_topk_prob``, cast back to the logits' dtype. The streams
mix around the MoE block, not inside it, so capture, masking and pruning see an
ordinary block; the shared expert and its gate are outside the routed experts.
"""

from __future__ import annotations

from dataclasses import replace

from core.families.qwen3_next import ADAPTER as QWEN3_NEXT

# Routes and masks as Qwen3-Next; its names, saved layout and streaming differ.
ADAPTER = replace(
    QWEN3_NEXT,
    name="qwen4_exp",
    label="Qwen4-Exp",
    block_classes=("Qwen4ExpTextSparseMoeBlock",),
    model_types=("qwen4_exp", "qwen4_exp_text"),
    prune=replace(
        QWEN3_NEXT.prune,
        layouts="per-expert `gate_proj`/`up_proj`/`down_proj` as saved; shared expert and its "
        "gate untouched",
    ),
    stream_refusal="its hyper-connection streams are merged outside the decoder layers, which "
    "streaming does not load; collect without --stream-layers",
)
