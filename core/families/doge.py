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

Neither evaluation nor pruning handles it: the selection happens inside the block's
forward with no module boundary where a dropped expert could be excluded, and the
product keys address experts as a √E × √E grid that a smaller expert count cannot
keep.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter


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
    no_mask_reason="its product-key router picks the top-k inside the block's forward, with no "
    "module boundary where dropped experts could be excluded; compare masks with lens mask "
    "and the bundle's statistics instead",
    no_prune_reason="its product keys address experts as a √E × √E grid (expert i·√E + j), "
    "which a smaller expert count cannot keep",
)
