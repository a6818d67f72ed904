"""Inkling: one router matrix scores the routed *and* the shared experts (E + S rows).

Routed experts are chosen by sigmoid + correction bias; the weights of the k
chosen and the S shared experts are a softmax of their log-sigmoid logits
together, times ``route_scale`` and a learned global scale, and the router
returns the shared experts' weights (gammas) as a 4th output. The router's
first output holds only the E routed logits, so masked routing recomputes the
shared experts' logits from the router's input (the same float32 linear the
router runs); pruning keeps the S trailing rows of the router weight.
"""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def sigmoid_choice_shared_softmax(
    router: Any, logits: Any, dropped: Any, inputs: tuple = ()
) -> tuple:
    """Inkling's routing with the dropped experts' selection score at −inf.

    Returns ``(routed_logits, top_k_weights, top_k_index, shared_gammas)`` as the router does;
    the shared experts always run, so only the routed weights' share of the softmax changes.
    """
    import torch  # lazy: only evaluation runs routing
    import torch.nn.functional as F

    shared = router.n_shared_experts
    flat = inputs[0].reshape(-1, router.hidden_dim)
    full = F.linear(flat.float(), router.weight.float())
    shared_logits = full[..., -shared:]
    choice = logits.sigmoid() + router.e_score_correction_bias.float()
    index = torch.topk(
        choice.masked_fill(dropped, float("-inf")), router.top_k, dim=-1, sorted=False
    )[1]
    chosen = torch.cat([logits.gather(-1, index), shared_logits], dim=-1)
    log_probs = F.logsigmoid(chosen)
    weights = torch.exp(log_probs - torch.logsumexp(log_probs, dim=-1, keepdim=True))
    weights = (weights * router.route_scale * router.global_scale.float()).to(inputs[0].dtype)
    gammas = weights[..., -shared:].contiguous()
    return (
        logits.masked_fill(dropped, float("-inf")),
        weights[..., : router.top_k].contiguous(),
        index,
        gammas,
    )


ADAPTER = FamilyAdapter(
    name="inkling",
    label="Inkling",
    router_attr="gate",
    block_classes=("InklingMoE",),
    model_types=("inkling_text",),
    router_doc="`mlp.gate` (E routed + S shared rows)",
    routing="sigmoid + correction bias choose top-k; the k chosen and the shared experts are "
    "weighted by a softmax of their log-sigmoid logits (prob_sum is the softmax of the E "
    "routed logits)",
    collect_doc="softmax of the E routed logits for `prob_sum`; top-k and weights are what the "
    "model used; the shared experts' weights are not recorded",
    router_outputs=4,
    masked_routing=sigmoid_choice_shared_softmax,
    masked_routing_doc="dropped experts' selection score at −inf; the k chosen and the shared "
    "experts softmaxed together as the router does (shared logits recomputed from its input)",
    prune=PruneSpec(
        layouts="fused `experts.gate_up_proj`/`down_proj`; router rows sliced, its "
        "`n_shared_experts` trailing rows kept; `e_score_correction_bias`",
        router_bias=False,
        untouched="the shared experts (and their router rows)",
        uneven="refused (one expert count per config, no router bias)",
    ),
)
