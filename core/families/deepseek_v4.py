"""DeepSeek-V4: learned-router layers (score function + correction bias) and hash-routed layers.

Learned layers (``DeepseekV4TopKRouter``): scores = ``score_fn(logits)`` (sqrt-softplus by
default); scores + ``e_score_correction_bias`` choose the top-k (no groups); weights are
the chosen scores renormalised (+1e-20) times ``routed_scaling_factor``.

Hash-routed layers (the first ``mlp_layer_types == "hash_moe"`` ones,
``DeepseekV4HashRouter``): the experts come from a frozen token-id table,
``tid2eid[input_ids]``; the router's logits only weight them. Collection records
what the table chose (top-k counts and weights are the model's; ``prob_sum`` stays
the softmax of the logits, which did not choose), lists these layers in the
bundle's ``hash_routed_layers`` metadata, and counts each slot, so a table row that
names one expert twice (the model then runs it twice) counts it twice.

A mask cannot reroute a hash-routed layer (its table names the experts), so masks
must keep every expert there; and since a config holds one expert count for all
layers, such masks cannot be written as a checkpoint: pruning is refused.
"""

from __future__ import annotations

from typing import Any

from core.errors import LensError
from core.families.base import FamilyAdapter
from core.families.routing import scored_bias_top_k, scored_weights


def masked_routing(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """The router's output with dropped experts unselectable; hash layers must keep all.

    Learned layers: dropped experts' *selection* score at −inf (their score plus the
    correction bias would otherwise stay selectable), top-k, weights renormalised and
    scaled as the model does. Hash layers: the table's own choice, refused if it could
    name a dropped expert.
    """
    if not hasattr(router, "tid2eid"):
        return scored_bias_top_k(router, logits, dropped, inputs)
    if bool(dropped.any()):
        raise LensError(
            "DeepSeek-V4 hash-routed layers choose experts from a token-id table "
            "(tid2eid), which a mask cannot reroute: keep every expert in those layers "
            "(the bundle's hash_routed_layers)"
        )
    index = router.tid2eid[inputs[1].reshape(-1)].long()
    weights = scored_weights(router, router.score_fn(logits), index)
    return logits.masked_fill(dropped, float("-inf")), weights, index


ADAPTER = FamilyAdapter(
    name="deepseek_v4",
    label="DeepSeek-V4",
    router_attr="gate",
    block_classes=("DeepseekV4SparseMoeBlock",),
    model_types=("deepseek_v4",),
    router_doc="`mlp.gate` (hash layers: `mlp.gate.tid2eid`)",
    routing="learned layers: score_fn (sqrt-softplus) + correction bias chooses top-k, weights "
    "renormalised and scaled; hash-routed layers (hash_routed_layers): experts from the "
    "token-id table tid2eid[input_ids], each slot counted (prob_sum is the softmax of the logits)",
    collect_doc="softmax of the logits for `prob_sum`; top-k and weights are what the model used "
    "(score + correction bias; in hash-routed layers the token-id table's choice, listed in "
    "`hash_routed_layers`, a repeated expert counted per slot)",
    masked_routing=masked_routing,
    masked_routing_doc="learned layers: dropped experts' selection score at −inf, top-k, "
    "renormalised and scaled; hash-routed layers must keep every expert",
    no_prune_reason="its hash-routed layers pick experts from a token-id table that a mask "
    "cannot reroute, so masks keep every expert there and differ in count from the other "
    "layers, which a config (one expert count) cannot hold; lens evaluate applies masks that "
    "keep the hash-routed layers whole in memory",
    hash_table_attr="tid2eid",
    stream_refusal="its hyper-connection streams are merged by an hc_head outside the decoder "
    "layers, which streaming does not load; collect without --stream-layers",
)
