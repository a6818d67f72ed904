"""Llama-4 (text): the router returns ``(scores, logits)`` and the experts see scaled inputs.

Its experts run densely on inputs already multiplied by the routing score, so
capture reads the norms from the experts' output (``style="llama4"``) instead
of the fused interface, and masked routing returns ``(scores, logits)`` too.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import llama4_top_k_sigmoid

ADAPTER = FamilyAdapter(
    name="llama4",
    label="Llama-4 (text)",
    router_attr="router",
    block_classes=("Llama4TextMoe",),
    model_types=("llama4", "llama4_text"),
    router_doc="`feed_forward.router`",
    routing="top-k of logits, sigmoid weights applied to the input",
    collect_doc="softmax of all E logits; weights scale the expert *input*, so ‖y‖ is "
    "‖expert(w·x)‖ / w",
    logits_index=1,
    style="llama4",
    masked_routing=llama4_top_k_sigmoid,
    masked_routing_doc="top-k of the masked logits, sigmoid of those as the input scale, 0 "
    "for every other expert",
    prune=PruneSpec(
        layouts="fused `gate_up_proj`/`down_proj` under `feed_forward`; shared expert untouched; "
        "the multimodal `llama4`'s `text_config`",
        router_bias=False,
        untouched="the shared expert",
    ),
)
