"""PhiMoE: sparsemixer top-2 — the best expert, then the best of the rest, each weighted by a
softmax over only the experts whose logits lie within a jitter band of that choice."""

from __future__ import annotations

from typing import Any

from core.families.base import FamilyAdapter, PruneSpec


def _band_softmax(scores: Any, candidates: Any, eps: float) -> tuple[Any, Any]:
    """The best of ``candidates`` and its weight: softmax over the candidates whose logit is
    within ``2·eps`` (relative to max(|logit|, best)) of the best one, as sparsemixer does."""
    import torch  # lazy: only evaluation runs routing

    best, index = candidates.max(dim=-1, keepdim=True)
    factor = scores.abs().clamp(min=best)
    # A dropped expert's −inf gives inf/inf = nan here, which compares False: it stays −inf.
    outside = ((best - scores) / factor) > (2 * eps)
    weights = torch.softmax(candidates.masked_fill(outside, float("-inf")), dim=-1)
    return weights.gather(dim=-1, index=index), index


def sparsemixer_top2(router: Any, logits: Any, dropped: Any, inputs: tuple = ()) -> tuple:
    """PhiMoE's eval-mode sparsemixer on the logits with the dropped experts at −inf.

    The first expert is the best kept logit; the second the best of the kept rest. Each
    weight is a softmax over the experts near its choice (``router_jitter_noise`` band), so
    masking the logits is exactly what a checkpoint without those experts computes. Top-k
    is 2 by construction (sparsemixer ignores ``top_k``).
    """
    import torch  # lazy: only evaluation runs routing

    masked = logits.masked_fill(dropped, float("-inf"))
    eps = router.router_jitter_noise
    first_weight, first = _band_softmax(masked, masked, eps)
    rest = torch.scatter(masked, -1, first, float("-inf"))
    second_weight, second = _band_softmax(masked, rest, eps)
    weights = torch.cat((first_weight, second_weight), dim=-1)
    return masked, weights, torch.cat((first, second), dim=-1)


ADAPTER = FamilyAdapter(
    name="phimoe",
    label="PhiMoE",
    router_attr="router",
    block_classes=("PhimoeSparseMoeBlock",),
    model_types=("phimoe",),
    router_doc="`mlp.router` (saved as `block_sparse_moe.gate`)",
    routing="sparsemixer top-2 (prob_sum is the softmax of the logits)",
    collect_doc="softmax of all E logits; top-k by sparsemixer",
    masked_routing=sparsemixer_top2,
    masked_routing_doc="sparsemixer (eval mode) on the logits with dropped experts at −inf: "
    "best kept expert, then best of the kept rest, each weighted by a softmax over its "
    "jitter band",
    prune=PruneSpec(
        layouts="per-expert `w1`/`w2`/`w3` under `block_sparse_moe`",
        router_bias=False,
        uneven="refused (one expert count per config, no router bias)",
    ),
)
