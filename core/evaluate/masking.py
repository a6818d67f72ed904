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

How each family routes with a mask is its adapter's ``masked_routing``
(:mod:`core.families`); a family whose block selects inside its own forward
(Doge) has a ``masked_block`` instead, and the hook sits on the block and
returns the block's output recomputed with the mask. Families with neither are
refused with one line: their routers differ in ways a wrong guess would
silently get wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.errors import LensError
from core.families import ADAPTERS
from core.families.layers import MoeLayer
from core.model.hooks import HookSet


def check_supported(layers: Sequence[MoeLayer], model_name: str) -> None:
    """Refuse a model whose MoE family we cannot mask in memory."""
    family = layers[0].family
    if family.masks_in_memory:
        return
    if family.no_mask_reason:
        raise LensError(
            f"{model_name}: evaluating masks in memory is not supported for {family.label}: "
            f"{family.no_mask_reason}"
        )
    supported = ", ".join(a.name for a in ADAPTERS if a.masks_in_memory)
    raise LensError(
        f"{model_name}: evaluating masks in memory is not supported for the {family.name!r} "
        f"MoE family (supported: {supported})"
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

    def __init__(self, layers: Sequence[MoeLayer], model_name: str = "model") -> None:
        check_supported(layers, model_name)
        self.layers = list(layers)
        self.model_name = model_name
        self._hooks = HookSet()
        self._dropped: np.ndarray | None = None  # [L, E] bool, True = dropped
        self._on_device: dict[tuple[int, Any], Any] = {}
        self._calls = [0] * len(self.layers)

    def __enter__(self) -> MaskedRouting:
        self._hooks.install(self._attach)
        return self

    def _attach(self, hooks: HookSet) -> None:
        for layer in self.layers:
            if layer.family.masked_block is not None:  # Doge: the block selects inside
                hooks.forward_hook(layer.block, self._block_hook(layer))
            else:
                hooks.forward_hook(layer.router, self._hook(layer))

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._hooks.close()

    def use(self, keep: np.ndarray | None) -> None:
        """Route with only the experts ``keep[l, e]`` (boolean ``[L, E]``), or unmasked."""
        if keep is not None:
            keep = np.asarray(keep, dtype=bool)
            expected = (len(self.layers), self.layers[0].num_experts)
            if keep.shape != expected:
                raise LensError(
                    f"mask shape {keep.shape} does not match the model's {expected} (layers, experts)"
                )
            for i, layer in enumerate(self.layers):
                if layer.family.hash_routed(layer.router) and not keep[i].all():
                    refusal = layer.family.hash_layer_refusal(
                        f"MoE layer {i}", int(keep[i].sum()), layer.num_experts
                    )
                    raise LensError(f"{self.model_name}: {refusal}")
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
            import torch  # lazy: the package's module docs import without torch

            assert self._dropped is not None
            tensor = torch.as_tensor(self._dropped[index], device=device)
            self._on_device[key] = tensor
        return tensor

    def _block_hook(self, layer: MoeLayer) -> Callable:
        recompute = layer.family.masked_block
        assert recompute is not None
        index = layer.index

        def hook(module: Any, args: Any, output: Any) -> Any:
            self._calls[index] += 1
            if self._dropped is None:
                return None
            return recompute(module, args, output, self._dropped_on(index, args[0].device))

        return hook

    def _hook(self, layer: MoeLayer) -> Callable:
        route = layer.family.masked_routing
        index = layer.index

        def hook(module: Any, args: Any, output: Any) -> Any:
            self._calls[index] += 1
            if self._dropped is None:
                return None
            if layer.family.router_returns_logits:  # DBRX: the block routes the masked logits
                if isinstance(output, tuple):
                    raise LensError(
                        f"{layer.name}: its router returned a tuple, not the logits "
                        f"{layer.family.label} routers return; this transformers version routes "
                        "differently"
                    )
                flat = output.reshape(-1, output.shape[-1])
                return route(module, flat, self._dropped_on(index, flat.device), args)
            # (scores, logits) for Llama-4; JetMoE's and Zaya's routers return more than three
            expected = 2 if layer.family.style == "llama4" else layer.family.router_outputs
            if not isinstance(output, tuple) or len(output) != expected:
                raise LensError(
                    f"{layer.name}: its router returned {type(output).__name__}, not the "
                    f"{expected}-tuple {layer.family.label} routers return; this transformers "
                    "version routes differently"
                )
            logits = output[layer.family.logits_index]
            flat = logits.reshape(-1, logits.shape[-1])
            routed = route(module, flat, self._dropped_on(index, flat.device), args)
            # Values past what the routing recomputes (Zaya's router state for the next layer)
            # do not depend on the choice: passed through as the router computed them.
            return (*routed, *output[len(routed) :]) if len(routed) < expected else routed

        return hook
