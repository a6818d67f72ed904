"""Masked-routing functions shared by several families.

Each function recomputes a router's output from its dense logits with the
dropped experts at −inf, the way that family routes, so the experts module
never selects them. It is called as ``route(router, logits, dropped, inputs)``
where ``inputs`` are the router's positional inputs (MiniMax-M2 passes its
correction bias there). torch is imported inside each function: this package
is read by torch-free tools (pruning, docs), and only evaluation calls these.
"""

from __future__ import annotations

from typing import Any

from core.families.base import MaskedRoute


def softmax_top_k(*, always_renorm: bool, cast: bool, to_input: bool = False) -> MaskedRoute:
    """Softmax over all E (float32), top-k, renormalised (always, or if ``norm_topk_prob``).

    ``cast`` returns the weights in the logits' dtype, as Qwen/OLMoE do
    (``to_input``: in the hidden states' dtype, as Lara-Mini, whose logits are
    float32); Mixtral keeps them in float32.
    """

    def route(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
        import torch  # lazy: only evaluation runs routing

        masked = logits.masked_fill(dropped, float("-inf"))
        probs = torch.softmax(masked, dim=-1, dtype=torch.float)
        top, index = torch.topk(probs, router.top_k, dim=-1)
        if always_renorm or getattr(router, "norm_topk_prob", False):
            top = top / top.sum(dim=-1, keepdim=True)
        if cast:
            top = top.to(inputs[0].dtype if to_input else logits.dtype)
        return masked, top, index

    return route


def logits_top_k_softmax(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Top-k of the masked logits (a router bias is already in them), softmax over those k."""
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    top, index = torch.topk(masked, router.top_k, dim=-1)
    scores = torch.softmax(top, dim=1, dtype=top.dtype)
    return masked, scores, index


def sigmoid_grouped_top_k(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """DeepSeek-V3's routing with the dropped experts' *selection* score at −inf.

    Sigmoid scores plus the correction bias choose; group-limited top-k
    (``num_group`` groups, the best ``topk_group`` by the sum of their two best
    scores); weights are the chosen sigmoid scores, renormalised if
    ``norm_topk_prob``, times ``routed_scaling_factor``. Masking the logits
    alone would not do: sigmoid(−inf) plus the correction bias is still a
    finite, selectable score.
    """
    import torch  # lazy: only evaluation runs routing

    experts = logits.shape[-1]
    groups = router.num_group
    scores = logits.sigmoid()
    choice = (scores + router.e_score_correction_bias).masked_fill(dropped, float("-inf"))
    group_scores = choice.view(-1, groups, experts // groups).topk(2, dim=-1)[0].sum(dim=-1)
    group_index = torch.topk(group_scores, k=router.topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores)
    group_mask.scatter_(1, group_index, 1)
    score_mask = group_mask.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
    choice = choice.masked_fill(~score_mask.bool(), float("-inf"))
    index = torch.topk(choice, k=router.top_k, dim=-1, sorted=False)[1]
    weights = scores.gather(1, index)
    if router.norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    weights = weights * router.routed_scaling_factor
    return logits.masked_fill(dropped, float("-inf")), weights, index


def sigmoid_bias_top_k(*, eps: float = 0.0, scale: str | None = None) -> MaskedRoute:
    """Sigmoid scores plus a correction bias held by the *block* (the router's 2nd input) choose.

    Top-k of the selection score with dropped experts at −inf; weights are the
    chosen sigmoid scores divided by their sum (+ ``eps``), times the router's
    ``scale`` attribute if named. MiniMax-M2: no eps, no scale; HY-V3:
    ``router_scaling_factor``; AFMoE: ``route_scale``.
    """

    def route(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
        import torch  # lazy: only evaluation runs routing

        scores = torch.sigmoid(logits.float())
        choice = (scores + inputs[1]).masked_fill(dropped, float("-inf"))
        index = torch.topk(choice, router.top_k, dim=-1, sorted=False)[1]
        weights = scores.gather(1, index)
        weights = weights / (weights.sum(dim=-1, keepdim=True) + eps)
        if scale is not None:
            weights = weights * getattr(router, scale)
        return logits.masked_fill(dropped, float("-inf")), weights, index

    return route


def softmax_biased_choice(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """ERNIE-4.5: softmax over all E; softmax + correction bias chooses; weights renormalised.

    The weights are the chosen softmax probabilities divided by their sum
    (clamped below at ``norm_min``), in the logits' dtype.
    """
    import torch  # lazy: only evaluation runs routing

    masked = logits.float().masked_fill(dropped, float("-inf"))
    probs = torch.softmax(masked, dim=1, dtype=torch.float)
    choice = router.moe_statics(probs).masked_fill(dropped, float("-inf"))
    index = torch.topk(choice, router.top_k, dim=-1)[1]
    weights = torch.gather(probs, dim=-1, index=index)
    weights = weights / torch.clamp(weights.sum(dim=-1, keepdim=True), min=router.norm_min)
    return masked, weights.to(logits.dtype), index


def sigmoid_optional_bias_top_k(
    router: Any, logits: Any, dropped: Any, inputs: tuple = ()
) -> tuple:
    """LFM2-MoE: sigmoid scores (+ the block's expert bias, the router's 2nd input, if used).

    Top-k of the selection score with dropped experts at −inf; weights are the
    chosen sigmoid scores, renormalised if ``norm_topk_prob`` (+1e-6), times
    ``routed_scaling_factor``.
    """
    import torch  # lazy: only evaluation runs routing

    scores = logits.sigmoid()
    bias = inputs[1] if len(inputs) > 1 else None
    choice = scores + bias if router.use_expert_bias and bias is not None else scores
    index = torch.topk(choice.masked_fill(dropped, float("-inf")), k=router.top_k, dim=-1)[1]
    weights = torch.gather(scores, dim=1, index=index).type_as(logits)
    if router.norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-6)
    weights = weights * router.routed_scaling_factor
    return logits.masked_fill(dropped, float("-inf")), weights, index


def llama4_top_k_sigmoid(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Llama-4: top-k of the masked logits; scores are sigmoid of those, 0 elsewhere.

    Returned as Llama-4's router returns them: ``(scores[T, E], logits[T, E])``;
    the block multiplies every expert's input by its score, so a dropped
    expert's score of exactly 0 removes it.
    """
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    top, index = torch.topk(masked, router.top_k, dim=1)
    scores = torch.full_like(masked, float("-inf")).scatter_(1, index, top)
    return torch.sigmoid(scores.float()).to(scores.dtype), masked


def softmax_greedy_scaled(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """DeepSeek-V2: softmax over all E of the masked logits; greedy or group-limited greedy
    top-k (groups scored by their best probability); weights times ``routed_scaling_factor``."""
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    scores = masked.softmax(dim=-1, dtype=torch.float32)
    if router.topk_method == "group_limited_greedy":
        groups, experts = router.num_group, scores.shape[-1]
        group_scores = scores.view(-1, groups, experts // groups).max(dim=-1).values
        group_index = torch.topk(group_scores, k=router.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_index, 1)
        keep = group_mask.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
        scores = scores.masked_fill(~keep.bool(), 0.0)
    weights, index = torch.topk(scores, k=router.top_k, dim=-1, sorted=False)
    return masked, weights * router.routed_scaling_factor, index


def sigmoid_router_bias_top_k(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Laguna: sigmoid of the (soft-capped) logits + the router's correction bias chooses;
    weights are the chosen sigmoid scores, renormalised, in the hidden states' dtype."""
    import torch  # lazy: only evaluation runs routing

    scores = torch.sigmoid(logits)
    choice = scores + router.e_score_correction_bias.to(scores.dtype)
    index = torch.topk(choice.masked_fill(dropped, float("-inf")), router.top_k, dim=-1)[1]
    weights = scores.gather(-1, index)
    weights = (weights / weights.sum(dim=-1, keepdim=True)).to(inputs[0].dtype)
    return logits.masked_fill(dropped, float("-inf")), weights, index


def biased_logits_top_k_sigmoid(
    router: Any, logits: Any, dropped: Any, inputs: tuple = ()
) -> tuple:
    """Kolibri-1: top-k of logits + correction bias; weights are the chosen logits' sigmoid,
    renormalised if ``norm_topk_prob``."""
    import torch  # lazy: only evaluation runs routing

    choice = (logits + router.e_score_correction_bias).masked_fill(dropped, float("-inf"))
    index = torch.topk(choice, router.top_k, dim=-1)[1]
    weights = logits.gather(1, index).sigmoid()
    if router.norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return logits.masked_fill(dropped, float("-inf")), weights, index


def logits_top_k_select_fn(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Cohere2-MoE: top-k of the masked logits, then softmax over k or sigmoid (renormalised
    if ``norm_topk_prob``), in the hidden states' dtype."""
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    top, index = torch.topk(masked, router.top_k, dim=-1)
    if router.expert_selection_fn == "softmax":
        weights = torch.softmax(top, dim=1, dtype=torch.float)
    else:
        weights = torch.sigmoid(top)
        if router.norm_topk_prob:
            weights = weights / torch.sum(weights, dim=-1, keepdim=True)
    return masked, weights.to(inputs[0].dtype), index


def softmax_biased_choice_scaled(
    router: Any, logits: Any, dropped: Any, inputs: tuple = ()
) -> tuple:
    """LongCat-Flash: softmax over all experts (zero-computation ones included); softmax +
    correction bias chooses the top-k; weights are the chosen probabilities times
    ``routed_scaling_factor`` (not renormalised), in the logits' dtype."""
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    scores = masked.softmax(dim=-1)
    choice = (scores + router.e_score_correction_bias.unsqueeze(0)).masked_fill(
        dropped, float("-inf")
    )
    index = torch.topk(choice, k=router.top_k, dim=-1, sorted=False)[1]
    weights = scores.gather(1, index) * router.routed_scaling_factor
    return masked, weights.to(masked.dtype), index


def sigmoid_bias_optional_groups(*, unselected: float, scaled: bool) -> MaskedRoute:
    """A.X K2 and Beam: sigmoid scores + the router's correction bias choose, within the best
    ``topk_group`` of ``num_group`` groups when the router has groups (A.X K2-Light has none).

    Experts of unselected groups get the selection score ``unselected`` (Beam: −inf; A.X K2:
    0.0, as its reference code does), and the dropped experts are set to −inf again after
    that fill, so a 0.0 fill cannot make a dropped expert selectable. Weights are the chosen
    sigmoid scores, renormalised if ``norm_topk_prob`` (+1e-20), times
    ``routed_scaling_factor`` if ``scaled`` (Beam scales the block's output instead).
    """

    def route(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
        import torch  # lazy: only evaluation runs routing

        scores = logits.sigmoid()
        choice = (scores + router.e_score_correction_bias).masked_fill(dropped, float("-inf"))
        groups = router.num_group
        if groups is not None:
            experts = choice.shape[-1]
            per_group = choice.view(-1, groups, experts // groups).topk(2, dim=-1)[0].sum(dim=-1)
            chosen = torch.topk(per_group, k=router.topk_group, dim=-1, sorted=False)[1]
            keep = torch.zeros_like(per_group).scatter_(1, chosen, 1).bool()
            keep = keep.unsqueeze(-1).expand(-1, groups, experts // groups).reshape(-1, experts)
            choice = choice.masked_fill(~keep, unselected).masked_fill(dropped, float("-inf"))
        index = torch.topk(choice, k=router.top_k, dim=-1, sorted=False)[1]
        weights = scores.gather(1, index)
        if router.norm_topk_prob:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        if scaled:
            weights = weights * router.routed_scaling_factor
        return logits.masked_fill(dropped, float("-inf")), weights, index

    return route


def scored_weights(router: Any, scores: Any, index: Any) -> Any:
    """The chosen experts' scores over their sum (+1e-20), times ``routed_scaling_factor``."""
    weights = scores.gather(1, index)
    weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights * router.routed_scaling_factor


def scored_bias_top_k(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """Top-k of ``score_fn(logits)`` + correction bias with dropped experts at −inf; weights
    from :func:`scored_weights` (Inkling-2, DeepSeek-V4's learned layers)."""
    import torch  # lazy: only evaluation runs routing

    scores = router.score_fn(logits)
    choice = (scores + router.e_score_correction_bias).masked_fill(dropped, float("-inf"))
    index = torch.topk(choice, router.top_k, dim=-1, sorted=False).indices
    return logits.masked_fill(dropped, float("-inf")), scored_weights(router, scores, index), index
