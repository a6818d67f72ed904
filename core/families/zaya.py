"""Zaya: an MLP router scoring E experts and a skip expert, with balancing biases.

``ZayaRouter`` projects the hidden state (plus the previous layer's router state,
scaled) through ``down_proj`` and a small MLP to ``num_router_classes`` = E + 1
logits: class E is a *skip* expert that computes nothing. Softmax over all E + 1,
plus ``balancing_biases`` (the skip class starts at −1), chooses the top-k; the
weights are the chosen probabilities, not renormalised. A slot that chose the skip
expert is handed to the experts module as expert 0 with weight 0.

The bundle's E counts the skip expert (id E, like LongCat-Flash's zero-computation
experts), so its use is visible: ``prob_sum`` is the softmax over all E + 1 classes,
and a slot that skipped is recorded as expert E with weight 0 and ‖y‖ = 0 — not as
expert 0, which the model did not run for it. Which slots skipped is the router's own
choice recomputed from its logits and biases (the same operations it performs).

Pruning slices the router's ``out_proj`` rows and ``balancing_biases`` by the kept
ids, the skip class's row staying last, and the experts' fused tensors by the kept
routed ids; ``num_experts`` becomes the routed count kept. A pruned Zaya always scores
its skip class, so a mask must keep it (id E) in every layer. The router state passed
between layers lives before ``out_proj`` and does not depend on the expert count.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec
from core.families.layouts import IdentityExperts


def _choice(router: Any, logits: Any) -> Any:
    """The router's top-k over all E + 1 classes, as its forward computes it (skip included)."""
    import torch  # lazy: only collection and evaluation run this

    probs = torch.softmax(logits, dim=-1)
    return torch.topk(probs.detach().to(torch.float32) + router.balancing_biases, router.top_k)[1]


def observe(layer: Any, hooks: Any, sink: Any) -> None:
    """Router hook: probabilities, the choice with skips as id E; experts hook: ‖y‖ per slot."""
    import torch  # lazy: only collection runs this

    router, experts = layer.router, layer.experts
    skip_id = router.num_router_classes - 1
    pending: list[tuple] = []

    def router_hook(module: Any, args: Any, output: Any) -> None:
        if not sink.active:
            return
        logits = output[0]
        sink.probs(torch.softmax(logits.float(), dim=-1))
        skipped = _choice(router, logits) == skip_id
        index = torch.where(skipped, skip_id, output[2])
        if sink.energy:
            pending[:] = [(index, output[1], skipped)]
        else:
            sink.routed(index, output[1])

    def experts_hook(module: Any, args: Any, output: Any) -> None:
        if not sink.active or not pending:
            return
        index, weights, skipped = pending.pop()
        hidden, model_index = args[0], args[1]
        forward = type(module).forward
        norms = []
        for slot in range(model_index.shape[1]):
            unit = torch.zeros_like(weights)
            unit[:, slot] = 1
            norms.append(forward(module, hidden, model_index, unit).float().norm(dim=-1))
        norms = torch.where(skipped, 0.0, torch.stack(norms, dim=1))  # the skip expert: y = 0
        sink.routed(index, weights, norms)

    hooks.forward_hook(router, router_hook)
    if sink.energy:
        hooks.forward_hook(experts, experts_hook)


def masked_routing(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Zaya's choice with dropped classes at −inf (the skip expert can be dropped: never skip).

    Returns ``(masked logits, weights, index)``; the router's fourth output (its state
    for the next layer) does not depend on the choice and is passed through.
    """
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    probs = torch.softmax(masked, dim=-1)
    choice = (probs.detach().to(torch.float32) + router.balancing_biases).masked_fill(
        dropped, float("-inf")
    )
    index = torch.topk(choice, router.top_k)[1]
    weights = torch.gather(probs, dim=1, index=index)
    skipped = index == router.num_router_classes - 1
    return masked, weights.masked_fill(skipped, 0), index.masked_fill(skipped, 0)


ADAPTER = FamilyAdapter(
    name="zaya",
    label="Zaya",
    router_attr="gate",
    block_classes=("ZayaSparseMoeBlock",),
    model_types=("zaya",),
    router_doc="`mlp.gate` (MLP router `router_mlp.out_proj`: E experts + a skip expert)",
    routing="MLP router over E + 1 classes (the last a skip expert); softmax + balancing biases "
    "choose top-k; weights are the chosen probabilities; E counts the skip expert",
    collect_doc="softmax over E experts and the skip expert (id E); a skipped slot is recorded "
    "as expert E with weight 0 and ‖y‖ = 0",
    num_experts_attr="num_router_classes",
    router_outputs=4,
    observe=observe,
    stream_refusal="its router state passes from one decoder layer to the next and it has "
    "weights outside the decoder layers that streaming does not load; collect without "
    "--stream-layers",
    masked_routing=masked_routing,
    masked_routing_doc="softmax of the masked logits; dropped classes' biased score at −inf; "
    "top-k; skip slots handed on as expert 0 with weight 0, as the model does",
    prune=PruneSpec(
        layouts="fused; router `gate.router_mlp.out_proj` and `gate.balancing_biases` sliced, "
        "the skip class's row kept last (masks must keep the skip expert)",
        router_bias=False,
        layout=IdentityExperts(label="skip expert", fixed=1),
    ),
)
