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
keep every expert there (``lens mask`` does so by itself for bundles that list
``hash_routed_layers``) and prune only the learned-router layers; evaluation and
pruning refuse a mask that drops experts in a hash-routed layer, naming the layer.
A config holds one expert count for all layers, so ``lens prune`` writes every
layer with all E slots: hash-routed layers untouched, learned layers with their
kept experts first and zero experts after them whose correction bias (saved as
``gate.bias``) is the most negative finite value, so the router never selects them.
"""

from __future__ import annotations

from typing import Any

from core.errors import LensError
from core.families.base import FamilyAdapter, PruneSpec
from core.families.routing import scored_bias_top_k, scored_weights


def masked_routing(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """The router's output with dropped experts unselectable; hash layers must keep all.

    Learned layers: dropped experts' *selection* score at −inf (their score plus the
    correction bias would otherwise stay selectable), top-k, weights renormalised and
    scaled as the model does. Hash layers: the table's own choice. A mask dropping
    experts there is refused, naming the layer, by :class:`~core.evaluate.masking.MaskedRouting`
    before any forward; the check here guards other callers.
    """
    if not hasattr(router, "tid2eid"):
        return scored_bias_top_k(router, logits, dropped, inputs)
    if bool(dropped.any()):
        kept = int((~dropped).sum())
        raise LensError(ADAPTER.hash_layer_refusal("this layer", kept, dropped.numel()))
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
    prune=PruneSpec(
        layouts="per-expert `ffn.experts.N.w1/w2/w3`, `ffn.gate.bias` (the correction bias); "
        "hash-routed layers (`ffn.gate.tid2eid`) copied unchanged",
        router_bias=True,
        untouched="the hash-routed layers and the shared experts",
        uneven="hash-routed layers keep all E; learned layers padded to E with zero experts "
        "whose correction bias is the most negative value (never selected)",
    ),
    hash_table_attr="tid2eid",
    stream_refusal="its hyper-connection streams are merged by an hc_head outside the decoder "
    "layers, which streaming does not load; collect without --stream-layers",
)
