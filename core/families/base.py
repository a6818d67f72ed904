"""What one MoE family is: the adapter every tool reads.

A :class:`FamilyAdapter` is the single description of a family. Collection
uses it to find the MoE blocks, router and experts of a loaded model and to
record how it routes; evaluation uses its :attr:`~FamilyAdapter.masked_routing`
to recompute routing with dropped experts in memory; pruning uses its
:class:`PruneSpec` to know which config keys to rewrite and what it cannot
express. Adding a family is one new module in this package that defines one
adapter, plus its registration in :mod:`core.families` and a tiny-model test.

This module imports no torch: the routing functions that need it import it
inside their body, so browsing and pruning (which never run a model) stay
torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.families.layouts import ExpertLayout

#: Config keys that may hold the routed expert count; pruning updates every one present.
EXPERT_COUNT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
#: Config key of the number of experts each token is routed to.
TOP_K_KEY = "num_experts_per_tok"

#: ``route(router, logits[T, E], dropped[E], inputs) -> (masked_logits, weights[T, k], index[T, k])``:
#: the router's output recomputed with the dropped experts unselectable (``inputs``: the
#: router's positional inputs, for routers that take more than the hidden states).
MaskedRoute = Callable[[Any, Any, Any], tuple]


@dataclass(frozen=True)
class PruneSpec:
    """What ``lens prune`` slices and rewrites for a family, and what it refuses."""

    layouts: str  # checkpoint layouts sliced, for docs
    #: a router bias lets padding experts be made unreachable (uneven masks): GPT-OSS's, or
    #: DeepSeek-V4's correction bias, which its checkpoints save as the router's ``bias``
    router_bias: bool
    grouped_routing: bool = False  # DeepSeek-V3: n_group / topk_group must stay consistent
    untouched: str = ""  # what pruning leaves alone, for messages and docs
    uneven: str = "refused"  # what happens to masks keeping different counts per layer, for docs
    expert_count_keys: tuple[str, ...] = EXPERT_COUNT_KEYS
    top_k_key: str = TOP_K_KEY
    #: tensors that do not all have one row per masked expert (LongCat's zero-computation
    #: experts, Zaya's skip class, Doge's product keys): :mod:`core.families.layouts`
    layout: ExpertLayout | None = None


@dataclass(frozen=True)
class FamilyAdapter:
    """How one MoE family is wired, routes, is masked in memory and is pruned.

    ``style`` is ``"fused"`` when the experts module is called as
    ``experts(hidden, top_k_index, top_k_weights)`` with exactly the routing
    the model used (transformers' ``@use_experts_implementation``), or
    ``"llama4"`` when the router returns ``(scores, logits)`` and the experts
    run densely on inputs already scaled by the score.
    """

    name: str  # recorded as the bundle's and evaluation's "family"
    label: str  # human name for tables and messages
    router_attr: str  # child of the MoE block that computes the routing
    block_classes: tuple[str, ...] = ()  # transformers MoE block class names
    model_types: tuple[str, ...] = ()  # config ``model_type`` values
    router_doc: str = ""  # where the router sits, for the README
    routing: str = "softmax over all experts, top-k"  # recorded in bundle metadata
    collect_doc: str = ""  # what prob_sum / routing record, for the README
    experts_attr: str = "experts"
    logits_index: int = 0  # where the dense [T, E] router logits sit in the router's output
    #: "logits", or "probs" when the router returns its softmax instead (Gemma-4): prob_sum
    #: is then that output itself, not a softmax of it.
    router_output: str = "logits"
    style: str = "fused"
    masked_routing: MaskedRoute | None = None  # None: evaluate refuses to mask in memory
    #: ``masked_block(block, args, output, dropped[E]) -> output``: the block's output recomputed
    #: with the dropped experts unselectable, for a block that selects inside its own forward
    #: with no router output to rewrite (Doge); returned by a forward hook on the block.
    masked_block: Callable[[Any, Any, Any, Any], Any] | None = None
    masked_routing_doc: str = ""  # how masked routing is recomputed, for the README
    prune: PruneSpec | None = None  # None: lens prune refuses the family
    no_prune_reason: str = ""  # why it is refused and what works instead, for the one-line error
    #: the backbone's list of decoder layers, which ``--stream-layers`` runs one at a time
    decoder_layers_attr: str = "layers"
    #: non-empty: why ``--stream-layers`` cannot run this family one layer at a time
    stream_refusal: str = ""
    #: the router returns only its dense logits and the *block* takes the top-k (DBRX):
    #: masked routing then returns just the masked logits, which the block routes as always.
    router_returns_logits: bool = False
    #: how many values the router returns (3: logits, weights, index); JetMoE's 5 or Zaya's 4
    #: are recomputed by its masked routing, or passed through past the first three; Inkling
    #: also returns its shared experts' gammas, a 4th value. Masked routing refuses a router
    #: that returns another shape.
    router_outputs: int = 3
    #: name of a router's token-id → experts table (DeepSeek-V4's ``tid2eid``): a layer whose
    #: router has one is hash-routed, its choice not a function of the router's logits, and
    #: may name one expert twice for a token (capture then counts each slot). Masks must keep
    #: every expert of such a layer (evaluation and pruning refuse others, naming the layer).
    hash_table_attr: str = ""
    #: ``observe(layer, hooks, sink)``: the family's own capture hooks, for routers and experts
    #: without the common interface (JetMoE, Doge, Zaya). Installed with ``hooks``
    #: (:class:`core.model.hooks.HookSet`), they report to ``sink``
    #: (:class:`core.collect.capture.LayerSink`): ``sink.probs(p[T, E])`` and
    #: ``sink.routed(index[T, k], weights[T, k], norms[T, k] | None)``.
    observe: Callable[[Any, Any, Any], None] | None = None
    #: the router's (or else the block's) attribute holding E when the experts module's count
    #: is not the bundle's (Zaya scores a skip expert too: ``num_router_classes`` = E + 1)
    num_experts_attr: str = ""
    #: why evaluation cannot mask this family in memory and what works instead (one line)
    no_mask_reason: str = ""

    @property
    def masks_in_memory(self) -> bool:
        """Whether lens evaluate can apply masks to a loaded model of this family."""
        return self.masked_routing is not None or self.masked_block is not None

    def hash_routed(self, router: Any) -> bool:
        """Whether ``router`` chooses experts from a token-id table rather than its logits."""
        return bool(self.hash_table_attr) and hasattr(router, self.hash_table_attr)

    def hash_layer_refusal(self, layer: str, kept: int, experts: int) -> str:
        """The one line refusing a mask that keeps ``kept`` of ``experts`` in the hash-routed
        ``layer``, and what works instead (evaluation and pruning both say it)."""
        return (
            f"{layer} is hash-routed and the mask keeps {kept} of its {experts} experts: "
            f"{self.label} picks that layer's experts from a token-id table "
            f"({self.hash_table_attr}) that a mask cannot reroute; keep every expert in "
            "hash-routed layers and prune only the learned-router ones (lens mask does so for "
            "bundles listing hash_routed_layers)"
        )

    def locate(self, block: Any) -> tuple[Any, Any] | None:
        """``(router, experts)`` of one MoE block of this family, or ``None`` if absent.

        The one place that knows where a block keeps them, so a caller that
        walks the model differently (one decoder layer at a time) finds them
        the same way.
        """
        router = getattr(block, self.router_attr, None)
        experts = getattr(block, self.experts_attr, None)
        if router is None or experts is None:
            return None
        return router, experts
