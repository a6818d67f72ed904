"""Llama-4 (text): the router returns ``(scores, logits)`` and the experts see scaled inputs.

Collection only (see :mod:`core.families.base`): its experts run densely on
inputs already multiplied by the routing score, so capture reads the norms
from the experts' output (``style="llama4"``) instead of the fused interface.
"""

from __future__ import annotations

from core.families.base import FamilyAdapter

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
)
