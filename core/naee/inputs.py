"""One MoE layer's input hidden states over the calibration data, streamed layer by layer.

NAEE needs each layer's block inputs from the unpruned model. Holding every
layer's inputs at once costs L × tokens × hidden (36 layers × 1M tokens ×
2,880 floats is 400 GB for gpt-oss-120b), so the inputs are captured one
layer at a time: a forward pre-hook on that layer's block records its input
(non-padding tokens only) and raises :class:`_Reached`, which ends the
forward right there, so layer l costs the first l decoder layers of compute.
Over all layers that is about L/2 full forwards of extra compute in exchange
for memory of one layer's inputs (tokens × hidden, in the model's dtype) —
the trade Expert_Sparsity's ``layerwise_pruning`` makes the other way round
by holding every sample's hidden states for the current layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import LensError
from core.families.layers import MoeLayer
from core.model.batching import BatchPadder


class _Reached(Exception):
    """Raised by the capture hook: the layer's input is recorded, the rest is not needed."""


def layer_inputs(
    backbone: Any,
    padder: BatchPadder,
    layer: MoeLayer,
    batches: Sequence[Sequence[Any]],
) -> Any:
    """``[T, H]`` inputs of ``layer``'s MoE block for every non-padding token of ``batches``.

    ``batches`` are lists of token id sequences, padded by ``padder`` exactly
    as collection and evaluation pad them; rows come out batch by batch,
    each batch's tokens in row-major order.
    """
    import torch  # lazy: only runs that load a model need it

    parts: list[Any] = []
    current: dict[str, Any] = {}

    def hook(module: Any, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.get("hidden_states")
        if hidden is None:
            raise LensError(f"{layer.name}: its MoE block was called without hidden states")
        flat = hidden.reshape(-1, hidden.shape[-1])
        mask = current["mask"].reshape(-1).to(flat.device)
        if flat.shape[0] != mask.shape[0]:
            raise LensError(
                f"{layer.name}: saw {flat.shape[0]} tokens but the batch has {mask.shape[0]}; "
                "this model reorders or drops tokens before its MoE layers"
            )
        parts.append(flat[mask].detach())
        raise _Reached

    handle = layer.block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode():
            for sequences in batches:
                inputs, _, mask = padder.pad(list(sequences))
                current["mask"] = mask.bool()
                try:
                    backbone(**inputs)
                except _Reached:
                    continue
                raise LensError(f"{layer.name}: the forward never reached this MoE block")
    finally:
        handle.remove()
    return torch.cat(parts) if parts else torch.zeros((0, 0))
