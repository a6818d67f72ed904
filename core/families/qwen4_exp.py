"""Qwen4-Exp: Qwen3-Next's MoE block (softmax top-k plus a gated shared expert) in a model
with hyper-connection residual streams; ``qwen4_exp`` wraps the same text model.

The router (``Qwen4ExpTextTopKRouter``) is Qwen3-Next's: softmax over all E in float32,
top-k, renormalised if ``norm_topk_prob``, cast back to the logits' dtype. The streams
mix around the MoE block, not inside it, so capture, masking and pruning see an
ordinary block; the shared expert and its gate are outside the routed experts.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import softmax_top_k

ADAPTER = FamilyAdapter(
    name="qwen4_exp",
    label="Qwen4-Exp",
    router_attr="gate",
    block_classes=("Qwen4ExpTextSparseMoeBlock",),
    model_types=("qwen4_exp", "qwen4_exp_text"),
    router_doc="`mlp.gate`",
    routing="softmax top-k, plus a gated shared expert",
    collect_doc="softmax over E, top-k (renormalised if `norm_topk_prob`); the shared expert is "
    "not recorded",
    masked_routing=softmax_top_k(always_renorm=False, cast=True),
    masked_routing_doc="softmax over all E (float32), top-k, renormalised if `norm_topk_prob`, "
    "cast back",
    prune=PruneSpec(
        layouts="per-expert `gate_proj`/`up_proj`/`down_proj` as saved; shared expert and its gate "
        "untouched",
        router_bias=False,
        untouched="the shared expert",
    ),
    stream_refusal="its hyper-connection streams are merged outside the decoder layers, which "
    "streaming does not load; collect without --stream-layers",
)
