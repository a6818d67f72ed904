"""Doge's CDMoE: product-key retrieval experts beside an always-on shared MLP.

``DogeCDMoE`` holds E = ``num_experts`` tiny experts, expert e being a pair of
vectors ``down_embed[e]``, ``up_embed[e]`` with output ``act(down_embed[e]·x) ·
up_embed[e]``. Its router (``router_gate``) emits two halves of √E key scores,
X and Y, and expert e = (i, j) = (e // √E, e % √E) scores ``X[i] + Y[j]``; the
block takes the top-k of those E sums and softmaxes them (renormalised if
``norm_topk_prob``). So the dense router logits over all E experts are X[i] + Y[j]
(experts beyond ⌊√E⌋², which no key pair reaches, at −inf), ``prob_sum`` is their
softmax, and the top-k index is what the block fed its embeddings.

The model splits its router output as ``view(2, B·S, √E)`` (transformers keeps it
for existing checkpoints): the X and Y halves of one token come from *other*
tokens of the batch, so routing depends on the batch's layout. Collection records
what the model did with the batch it ran (``routing`` says so); batch size 1 with
no padding gives each sample its own routing.

Its selection happens inside the block's forward, with no router output that
masked routing could rewrite, so evaluation recomputes the *block*: a forward hook
takes the router output the block computed, scores all E experts X[i] + Y[j] (the
dense logits above), sets the dropped ones to −inf, takes the top-k and mixes the
chosen embeddings and the shared MLP as the block does (:func:`masked_block`). Any
subset of experts can be masked this way.

Pruning keeps the product-key structure: the router's X and Y keys come from the
same 2·√E rows whichever token a half belongs to, so a pruned router keeps the same
keys I in both halves and a pruned layer is the sub-grid I × I of experts
(:class:`~core.families.layouts.ProductKeys`); other masks are refused in one line.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec
from core.families.layouts import ProductKeys


def dense_logits(block: Any, router_logits: Any) -> Any:
    """``[T, E]`` scores X[e // √E] + Y[e % √E] from the block's ``[2, T, √E]`` router output."""
    import torch  # lazy: only collection runs this

    keys_x, keys_y = router_logits[0], router_logits[1]
    tokens, keys = keys_x.shape
    scores = (keys_x.unsqueeze(-1) + keys_y.unsqueeze(-2)).reshape(tokens, keys * keys)
    if block.num_experts > keys * keys:  # ids no (i, j) pair reaches: never selectable
        unreachable = scores.new_full((tokens, block.num_experts - keys * keys), float("-inf"))
        scores = torch.cat([scores, unreachable], dim=-1)
    return scores


def observe(layer: Any, hooks: Any, sink: Any) -> None:
    """``down_embed`` hook: the top-k index the block used; block hook: scores, weights, ‖y‖."""
    import torch  # lazy: only collection runs this

    block = layer.block
    chosen: list[Any] = []

    def index_hook(module: Any, args: Any, output: Any) -> None:
        if sink.active:
            chosen[:] = [args[0]]

    def block_hook(module: Any, args: Any, output: Any) -> None:
        if not sink.active or not chosen:
            return
        index = chosen.pop()
        scores = dense_logits(block, output[1])
        sink.probs(torch.softmax(scores.float(), dim=-1))
        weights = torch.softmax(scores.gather(1, index), dim=-1)
        if block.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        norms = None
        if sink.energy:
            hidden = args[0].reshape(-1, args[0].shape[-1])
            down = block.down_embed.weight[index]  # [T, k, H]
            gate = block.act_fn(torch.einsum("tkh,th->tk", down.float(), hidden.float()))
            norms = gate.abs() * block.up_embed.weight[index].float().norm(dim=-1)
        sink.routed(index, weights, norms)

    hooks.forward_hook(block.down_embed, index_hook)
    hooks.forward_hook(block, block_hook)


def masked_block(block: Any, args: tuple, output: tuple, dropped: Any) -> tuple:
    """The block's ``(hidden, router_logits)`` with the dropped experts never chosen.

    The router output is the block's own (its batch-wide ``view(2, B·S, √E)`` split
    included); the top-k is taken over the E dense scores with the dropped ones at −inf
    rather than over the product keys, which is the same choice for an unmasked layer.
    The shared MLP is recomputed from the block's input, as the block computes it.
    """
    import torch  # lazy: only evaluation runs this

    hidden = args[0]
    bsz, seq_len, _ = hidden.shape
    router_logits = output[1]
    scores = dense_logits(block, router_logits).masked_fill(dropped, float("-inf"))
    top, index = scores.topk(block.top_k, dim=-1)
    weights = torch.softmax(top, dim=-1)
    if block.norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    down, up = block.down_embed(index), block.up_embed(index)
    mixed = torch.matmul(down, hidden.view(bsz * seq_len, -1, 1)).view(bsz * seq_len, -1)
    mixed = block.act_fn(mixed) * weights
    experts = torch.matmul(mixed.view(bsz * seq_len, 1, -1), up).view(bsz, seq_len, -1)
    shared = block.down_proj(block.act_fn(block.gate_proj(hidden)) * block.up_proj(hidden))
    return shared + experts, router_logits


ADAPTER = FamilyAdapter(
    name="doge",
    label="Doge (CDMoE)",
    router_attr="router_gate",
    experts_attr="down_embed",
    block_classes=("DogeCDMoE",),
    model_types=("doge",),
    router_doc="`mlp.router_gate` (product keys: 2 × √E scores)",
    routing="product keys: expert (i, j) scores X[i] + Y[j], top-k of the E sums, softmax over "
    "k; router halves split across the batch (view(2, B·S, √E)), so routing depends on the batch",
    collect_doc="softmax of the E product-key sums X[i] + Y[j] for `prob_sum`; top-k index as "
    "the block used it, softmax over k; ‖y‖ = |act(down·x)|·‖up‖; the shared MLP not recorded",
    num_experts_attr="num_experts",
    observe=observe,
    masked_block=masked_block,
    masked_routing_doc="the block recomputed: all E product-key sums X[i] + Y[j] with dropped "
    "experts at −inf; top-k; softmax over k; shared MLP as the block computes it",
    prune=PruneSpec(
        layouts="product keys: `router_gate` rows of the kept keys I in both halves, "
        "`down_embed`/`up_embed` rows of the kept experts; a layer must keep a square sub-grid "
        "I × I of keys",
        router_bias=False,
        uneven="refused (one √E for every layer)",
        layout=ProductKeys(),
    ),
)
