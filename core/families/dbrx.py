"""DBRX: the router returns only its logits; the block takes softmax, top-k and a p-norm.

``DbrxFFN`` computes ``softmax(router.layer(x))``, takes the top-k probabilities and
divides them by their ``moe_normalize_expert_weights``-norm (1: renormalised to sum 1).
Its experts (``DbrxExperts``) hold ``w1``/``v1``/``w2`` as ``[E·ffn, H]`` matrices and
are called with ``(hidden, top_k_index, top_k_weights)``, so capture reads the
model's routing there. Pruning slices those matrices by blocks of ffn rows and
rewrites ``ffn_config``'s ``moe_num_experts`` / ``moe_top_k``. Masking replaces the router's logits with the dropped experts
at −inf (softmax gives them 0, the block never picks them).
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def masked_logits(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> Any:
    """The router's logits with the dropped experts at −inf; the block routes them as always."""
    return logits.masked_fill(dropped, float("-inf"))


ADAPTER = FamilyAdapter(
    name="dbrx",
    label="DBRX",
    router_attr="router",
    block_classes=("DbrxFFN",),
    model_types=("dbrx",),
    router_doc="`ffn.router.layer`",
    routing="softmax over E, top-k, divided by their p-norm (moe_normalize_expert_weights)",
    collect_doc="softmax over E, top-k, weights divided by their p-norm "
    "(`moe_normalize_expert_weights`, 1: renormalised)",
    masked_routing=masked_logits,
    masked_routing_doc="the router's logits with dropped experts at −inf; the block's own "
    "softmax, top-k and p-norm follow",
    router_returns_logits=True,
    decoder_layers_attr="blocks",  # transformer.blocks
    stream_refusal="its embeddings and final norm (wte, norm_f) sit outside the decoder layers "
    "under names streaming does not know; collect without --stream-layers",
    prune=PruneSpec(
        layouts="`w1`/`v1`/`w2` stacked `[E·ffn, H]` (sliced by blocks of ffn rows), router "
        "`router.layer`; counts in `ffn_config`",
        router_bias=False,
        expert_count_keys=("moe_num_experts",),
        top_k_key="moe_top_k",
    ),
)
