"""Shared pieces of the per-family tests: capture a batch, and a by-hand reference to meet.

Each family's test writes its router forward and its experts from the weights
(``route`` below returns, per token, the experts and weights the model should
use and the dense probabilities); this module runs the capture under test on a
batch, checks the logits are bitwise those of the model without it, and compares
every statistic with the per-sample sums built from the hand-written routing.
Only the MoE blocks' *inputs* come from the model (forward pre-hooks of the test's
own), so attention and the rest of the network need no reimplementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from core.collect.capture import RouterCapture
from core.families.layers import MoeLayer, find_moe_layers
from tests.tiny_models import build_tiny_model_of_type

#: Two samples of equal length (no padding: some families route across the batch).
TOKENS = [
    [5, 17, 99, 3, 120, 41, 7, 7, 110, 33],
    [101, 8, 8, 90, 14, 30, 6, 77, 50, 21],
]
STATS = (
    "prob_sum",
    "topk_count",
    "weight_sum",
    "energy_sum",
    "act_norm_sum",
    "act_sqnorm_sum",
    "reap_sum",
)

#: ``route(layer, x[T, H], token_ids[T]) -> (probs[T, E], [(expert, weight, ‖y‖) per slot] per token)``
Route = Callable[[MoeLayer, torch.Tensor, list[int]], tuple[torch.Tensor, list[list[tuple]]]]


def tiny(model_type: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_tiny_model_of_type(model_type)


@torch.no_grad()
def capture(model, tokens=TOKENS) -> tuple[list[MoeLayer], dict[str, np.ndarray]]:
    """The capture's sums for one batch; asserts the logits are bitwise those without it."""
    ids = torch.tensor(tokens)
    attention = torch.ones_like(ids)
    layers = find_moe_layers(model)
    plain = model(ids, attention_mask=attention).logits
    with RouterCapture(layers, energy=True) as capture:
        capture.begin_batch(attention)
        captured = model(ids, attention_mask=attention).logits
        sums = capture.end_batch()
    assert torch.equal(plain, captured), "capture changed the logits"
    return layers, sums


@torch.no_grad()
def block_inputs(
    model, layers: list[MoeLayer], ids: list[list[int]], at: Callable = lambda layer: layer.block
) -> list[torch.Tensor]:
    """Per MoE layer, the ``[B·S, H]`` hidden states entering its block (or the module ``at``
    names: JetMoE's attention experts are never called as a module), from one forward."""
    seen: dict[int, torch.Tensor] = {}
    handles = [
        at(layer).register_forward_pre_hook(
            lambda m, args, i=layer.index: seen.__setitem__(
                i, args[0].reshape(-1, args[0].shape[-1])
            )
        )
        for layer in layers
    ]
    try:
        tokens = torch.tensor(ids)
        model(tokens, attention_mask=torch.ones_like(tokens))
    finally:
        for handle in handles:
            handle.remove()
    return [seen[layer.index].float() for layer in layers]


@torch.no_grad()
def reference(
    model,
    layers: list[MoeLayer],
    route: Route,
    tokens=TOKENS,
    per_sample: bool = True,
    at: Callable = lambda layer: layer.block,
) -> dict[str, np.ndarray]:
    """Every statistic per sample from ``route``'s hand-written routing.

    ``per_sample``: each sample runs alone (what a bundle means); otherwise the whole
    batch runs once (Doge routes across the batch, so its reference must see the batch).
    """
    out = {name: np.zeros((len(tokens), len(layers), layers[0].num_experts)) for name in STATS}
    runs = [[i] for i in range(len(tokens))] if per_sample else [list(range(len(tokens)))]
    for samples in runs:
        batch = [tokens[i] for i in samples]
        inputs = block_inputs(model, layers, batch, at)
        for layer, x in zip(layers, inputs):
            flat_ids = [t for row in batch for t in row]
            probs, routed = route(layer, x, flat_ids)
            length = len(batch[0])
            for row, i in enumerate(samples):
                rows = slice(row * length, (row + 1) * length)
                out["prob_sum"][i, layer.index] += probs[rows].double().sum(0).numpy()
                for slots in routed[rows]:
                    for e, w, norm in slots:
                        add(out, i, layer.index, e, w, norm)
    return out


def add(out: dict[str, np.ndarray], i: int, l: int, e: int, w: float, norm: float) -> None:
    out["topk_count"][i, l, e] += 1
    out["weight_sum"][i, l, e] += w
    out["energy_sum"][i, l, e] += w * w * norm * norm
    out["act_norm_sum"][i, l, e] += norm
    out["act_sqnorm_sum"][i, l, e] += norm * norm
    out["reap_sum"][i, l, e] += w * norm


def assert_matches(sums: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    for name in STATS:
        np.testing.assert_allclose(sums[name], expected[name], rtol=2e-4, atol=2e-4, err_msg=name)


def swiglu_expert(gate_up: torch.Tensor, down: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y = down · (silu(gate) ⊙ up) for gate_up ``[2I, H]`` (gate then up) and down ``[H, I]``."""
    gate, up = (gate_up.float() @ x).chunk(2)
    return down.float() @ (torch.nn.functional.silu(gate) * up)


def pruned_minus_masked(model, layers, folder, kept=None) -> float:
    """max |logits of lens prune's checkpoint − logits of the in-memory masked model|.

    ``kept``: ids per layer (the census's mask by default). The pruned checkpoint must
    load into its real class with no missing, unexpected or mismatched keys, and the mask
    must change the logits (or the comparison would prove nothing).
    """

    from core.evaluate.masking import MaskedRouting
    from scripts import families_census as census

    kept = kept or census._kept(layers)
    keep = np.zeros((len(layers), layers[0].num_experts), dtype=bool)
    for i, ids in enumerate(kept):
        keep[i, ids] = True
    with MaskedRouting(layers, "test") as routing:
        routing.use(keep)
        masked = census._logits(model)
    assert (masked - census._logits(model)).abs().max() > 1e-4  # the mask matters here
    pruned, info = census.prune_and_reload(model, layers, folder, kept, "test")
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    return (census._logits(pruned.eval()) - masked).abs().max().item()
