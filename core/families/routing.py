"""Masked-routing functions shared by several families.

Each function recomputes a router's output from its dense logits with the
dropped experts at −inf, the way that family routes, so the experts module
never selects them. torch is imported inside each function: this package is
read by torch-free tools (pruning, docs), and only evaluation calls these.
"""

from __future__ import annotations

from typing import Any

from core.families.base import MaskedRoute


def softmax_top_k(*, always_renorm: bool, cast: bool) -> MaskedRoute:
    """Softmax over all E (float32), top-k, renormalised (always, or if ``norm_topk_prob``).

    ``cast`` returns the weights in the logits' dtype, as Qwen/OLMoE do;
    Mixtral keeps them in float32.
    """

    def route(router: Any, logits: Any, dropped: Any) -> tuple:
        import torch  # lazy: only evaluation runs routing

        masked = logits.masked_fill(dropped, float("-inf"))
        probs = torch.softmax(masked, dim=-1, dtype=torch.float)
        top, index = torch.topk(probs, router.top_k, dim=-1)
        if always_renorm or getattr(router, "norm_topk_prob", False):
            top = top / top.sum(dim=-1, keepdim=True)
        if cast:
            top = top.to(logits.dtype)
        return masked, top, index

    return route
