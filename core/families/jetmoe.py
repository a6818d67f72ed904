"""JetMoE: a mixture of attention heads (MoA) and a mixture of MLP experts in every layer.

Both kinds route alike (``JetMoeTopKGating``, linear ``router.layer``): top-k of the
logits, softmax over those k. The router does not return ``(logits, weights, index)``
but the grouping its experts need — ``(index_sorted_experts, batch_index,
batch_gates, expert_size, logits)`` — and the experts (``input_linear`` /
``output_linear``, fused ``[E, out, in]``) are not called with the routing, so
capture uses its own hooks: the top-k index and weight of every (token, slot) are
read back from that grouping (what the model used), ‖y‖ from ``output_linear``'s
rows (an MLP expert's output; an attention expert's output projection) before the
gate. Each decoder layer gives two MoE layers in the bundle, MLP then attention
(module order; ``layer_names`` says which); both have the config's one expert count.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def _slots(router: Any, output: tuple) -> tuple[Any, Any, Any]:
    """``(index[T, k], weights[T, k], sorted_position[T·k])`` from the router's grouping."""
    import torch  # lazy: only collection runs this

    index_sorted, _, batch_gates, expert_size, logits = output
    tokens, k = logits.shape[0], router.top_k
    experts = torch.repeat_interleave(
        torch.arange(len(expert_size), device=logits.device),
        torch.as_tensor(expert_size, device=logits.device),
    )
    index = torch.empty(tokens * k, dtype=torch.long, device=logits.device)
    index[index_sorted] = experts
    weights = torch.empty(tokens * k, dtype=batch_gates.dtype, device=logits.device)
    weights[index_sorted] = batch_gates
    return index.view(tokens, k), weights.view(tokens, k), index_sorted


def observe(layer: Any, hooks: Any, sink: Any) -> None:
    """Router hook: softmax of the logits, the routing read back; ``output_linear`` hook: ‖y‖."""
    import torch  # lazy: only collection runs this

    router, output_linear = layer.router, layer.block.output_linear
    pending: list[tuple] = []

    def router_hook(module: Any, args: Any, output: Any) -> None:
        if not sink.active:
            return
        sink.probs(torch.softmax(output[4].float(), dim=-1))
        index, weights, index_sorted = _slots(router, output)
        if sink.energy:
            pending[:] = [(index, weights, index_sorted)]
        else:
            sink.routed(index, weights)

    def experts_hook(module: Any, args: Any, output: Any) -> None:
        if not sink.active or not pending:
            return
        index, weights, index_sorted = pending.pop()
        norms = torch.empty(index.numel(), dtype=torch.float32, device=output.device)
        norms[index_sorted] = output.float().norm(dim=-1)  # rows are in sorted (grouped) order
        sink.routed(index, weights, norms.view_as(weights))

    hooks.forward_hook(router, router_hook)
    if sink.energy:
        hooks.forward_hook(output_linear, experts_hook)


def masked_routing(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """JetMoE's gating on the masked logits, returned as its router returns it (5 values)."""
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    top_logits, top_index = masked.topk(router.top_k, dim=1)
    gates = torch.softmax(top_logits, dim=1).type_as(inputs[0])
    zeros = torch.zeros([gates.size(0), router.num_experts], dtype=gates.dtype, device=gates.device)
    expert_size = zeros.scatter(1, top_index, 1).long().sum(0).tolist()
    _, index_sorted = top_index.flatten().sort(0)
    batch_index = index_sorted.div(router.top_k, rounding_mode="trunc")
    return index_sorted, batch_index, gates.flatten()[index_sorted], expert_size, masked


ADAPTER = FamilyAdapter(
    name="jetmoe",
    label="JetMoE",
    router_attr="router",
    experts_attr="output_linear",
    block_classes=("JetMoeMoE", "JetMoeMoA"),
    model_types=("jetmoe",),
    router_doc="`mlp.router.layer` and `self_attention.experts.router.layer` (two MoE layers each)",
    routing="top-k of logits, softmax over k; MLP experts and attention-head experts (MoA) "
    "are separate MoE layers",
    collect_doc="softmax of all E logits; top-k of logits, softmax over k, read back from the "
    "router's grouping; MLP and attention (MoA) experts are two MoE layers per decoder layer",
    logits_index=4,
    router_outputs=5,
    observe=observe,
    stream_refusal="each decoder layer holds two MoE layers (attention and MLP experts), and "
    "streaming collects one per decoder layer; collect without --stream-layers",
    masked_routing=masked_routing,
    masked_routing_doc="the router's gating recomputed from the masked logits (top-k, softmax "
    "over k, grouping)",
    prune=PruneSpec(
        layouts="fused `input_linear`/`output_linear` of the MLP and of the attention experts, "
        "router `router.layer`",
        router_bias=False,
        untouched="the key/value projections and the output biases",
    ),
)
