"""Apply an expert mask to a loaded model in memory: dropped experts become unselectable.

docs/formats.md §Pruned checkpoint defines a pruned checkpoint by what it computes: the original model
with the dropped experts' router logits forced to −inf. :class:`MaskedRouting`
does exactly that without writing a checkpoint: a forward hook on every MoE
layer's router takes the router's dense logits, sets the dropped experts to
−inf and recomputes the top-k indices and weights *the way that family
routes*, and returns that as the router's output, which the experts module
then consumes. A forward pre-hook could not do this (GPT-OSS adds its bias
and takes the top-k inside the router's forward), and temporarily editing a
bias only works for families that have one.

Supported families (each checked against ``lens prune`` by a test):

| family | routing recomputed from the masked logits |
|---|---|
| GPT-OSS | top-k of the logits, softmax over those k |
| Mixtral | softmax over all E (float32), top-k, renormalised (float32 weights) |
| Qwen2-MoE, Qwen3-MoE, OLMoE | softmax over all E (float32), top-k, renormalised if ``norm_topk_prob``, cast back |
| DeepSeek-V3 | sigmoid scores; dropped experts' *selection* score at −inf (sigmoid(−inf) + correction bias would still be selectable); group-limited top-k; weights renormalised and scaled |

Other families are refused with one line: their routers differ in ways a
wrong guess would silently get wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.errors import LensError

#: Family names (``core.collect.families.Family.name``) whose routing we recompute.
SUPPORTED_FAMILIES = ("gpt_oss", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3")


def _gpt_oss(router: Any, logits: Any, dropped: Any) -> tuple:
    import torch

    masked = logits.masked_fill(dropped, float("-inf"))
    top, index = torch.topk(masked, router.top_k, dim=-1)
    scores = torch.softmax(top, dim=1, dtype=top.dtype)
    return masked, scores, index


def _softmax_router(*, always_renorm: bool, cast: bool) -> Callable:
    def route(router: Any, logits: Any, dropped: Any) -> tuple:
        import torch

        masked = logits.masked_fill(dropped, float("-inf"))
        probs = torch.softmax(masked, dim=-1, dtype=torch.float)
        top, index = torch.topk(probs, router.top_k, dim=-1)
        if always_renorm or getattr(router, "norm_topk_prob", False):
            top = top / top.sum(dim=-1, keepdim=True)
        if cast:
            top = top.to(logits.dtype)
        return masked, top, index

    return route


def _deepseek_v3(router: Any, logits: Any, dropped: Any) -> tuple:
    import torch

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


ROUTING: dict[str, Callable] = {
    "gpt_oss": _gpt_oss,
    "mixtral": _softmax_router(always_renorm=True, cast=False),
    "qwen2_moe": _softmax_router(always_renorm=False, cast=True),
    "qwen3_moe": _softmax_router(always_renorm=False, cast=True),
    "olmoe": _softmax_router(always_renorm=False, cast=True),
    "deepseek_v3": _deepseek_v3,
}


def check_supported(layers: Sequence[Any], model_name: str) -> None:
    """Refuse a model whose MoE family we cannot mask in memory."""
    family = layers[0].family.name
    if family not in ROUTING:
        raise LensError(
            f"{model_name}: evaluating masks in memory is not supported for the {family!r} MoE "
            f"family (supported: {', '.join(SUPPORTED_FAMILIES)})"
        )


class MaskedRouting:
    """Forward hooks on every MoE router; :meth:`use` picks the mask (``None`` = original).

    ::

        with MaskedRouting(layers, "model") as routing:
            routing.use(mask.as_bool())   # [L, E] kept experts
            model(...)                    # the dropped experts are never selected
            routing.use(None)             # the original model again, bit for bit

    :meth:`calls` counts router calls per layer since the last :meth:`use`, so a
    caller can tell that every hook ran (a fused kernel that bypasses the router
    module would otherwise make the mask silently ineffective).
    """

    def __init__(self, layers: Sequence[Any], model_name: str = "model") -> None:
        check_supported(layers, model_name)
        self.layers = list(layers)
        self.model_name = model_name
        self._handles: list[Any] = []
        self._dropped: np.ndarray | None = None  # [L, E] bool, True = dropped
        self._on_device: dict[tuple[int, Any], Any] = {}
        self._calls = [0] * len(self.layers)

    def __enter__(self) -> MaskedRouting:
        try:
            for layer in self.layers:
                self._handles.append(layer.router.register_forward_hook(self._hook(layer)))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def use(self, keep: np.ndarray | None) -> None:
        """Route with only the experts ``keep[l, e]`` (boolean ``[L, E]``), or unmasked."""
        if keep is not None:
            keep = np.asarray(keep, dtype=bool)
            expected = (len(self.layers), self.layers[0].num_experts)
            if keep.shape != expected:
                raise LensError(
                    f"mask shape {keep.shape} does not match the model's {expected} (layers, experts)"
                )
            short = [i for i, layer in enumerate(self.layers) if keep[i].sum() < layer.top_k]
            if short:
                raise LensError(
                    f"mask keeps {int(keep[short[0]].sum())} experts in layer {short[0]}, fewer "
                    f"than the model's top-k of {self.layers[short[0]].top_k}"
                )
        self._dropped = None if keep is None else ~keep
        self._on_device.clear()
        self._calls = [0] * len(self.layers)

    def calls(self) -> list[int]:
        return list(self._calls)

    def _dropped_on(self, index: int, device: Any) -> Any:
        key = (index, device)
        tensor = self._on_device.get(key)
        if tensor is None:
            import torch

            assert self._dropped is not None
            tensor = torch.as_tensor(self._dropped[index], device=device)
            self._on_device[key] = tensor
        return tensor

    def _hook(self, layer: Any) -> Callable:
        route = ROUTING[layer.family.name]
        index = layer.index

        def hook(module: Any, args: Any, output: Any) -> Any:
            self._calls[index] += 1
            if self._dropped is None:
                return None
            if not isinstance(output, tuple) or len(output) != 3:
                raise LensError(
                    f"{layer.name}: its router returned {type(output).__name__}, not "
                    "(logits, weights, indices); this transformers version routes differently"
                )
            logits = output[0]
            flat = logits.reshape(-1, logits.shape[-1])
            return route(module, flat, self._dropped_on(index, flat.device))

        return hook
