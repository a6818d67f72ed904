"""Doge's CDMoE: product-key experts; collected, masked in memory, pruned to key sub-grids."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.errors import LensError  # noqa: E402
from core.evaluate.masking import MaskedRouting  # noqa: E402
from core.formats.mask import Mask  # noqa: E402
from core.prune.surgery import prune_checkpoint  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return handmade.tiny("doge")


def route(layer, x, token_ids):
    """The router's 2·√E outputs read as (X, Y) = view(2, B·S, √E) of the *batch* (as the model
    does); expert e = (i, j) scores X[i] + Y[j]; top-k, softmax over k; ‖y‖ = |silu(d·x)|·‖u‖."""
    block = layer.block
    keys = int(block.num_experts**0.5)
    halves = (x @ block.router_gate.weight.float().T).reshape(2, x.shape[0], keys)
    scores = torch.stack(
        [
            torch.tensor(
                [
                    float(halves[0, t, e // keys] + halves[1, t, e % keys])
                    for e in range(block.num_experts)
                ]
            )
            for t in range(x.shape[0])
        ]
    )
    routed = []
    for t in range(x.shape[0]):
        top = sorted(range(block.num_experts), key=lambda e: -float(scores[t, e]))[: layer.top_k]
        weights = torch.softmax(scores[t, top], dim=0)
        slots = []
        for e, w in zip(top, weights):
            gate = torch.nn.functional.silu(block.down_embed.weight[e].float() @ x[t])
            norm = float(gate.abs()) * float(block.up_embed.weight[e].float().norm())
            slots.append((e, float(w), norm))
        routed.append(slots)
    return torch.softmax(scores, dim=-1), routed


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    assert [layer.family.name for layer in layers] == ["doge"] * 2
    assert (layers[0].num_experts, model.config.hidden_act) == (16, "silu")
    expected = handmade.reference(model, layers, route, per_sample=False)
    handmade.assert_matches(sums, expected)


def _block_outputs(model, layers, keep):
    """Per MoE layer: (block input [T, H], block output [T, H]) of one forward of the batch
    with ``keep`` ([L, E] bool) applied by MaskedRouting (``None``: the plain model)."""
    seen: dict[int, tuple] = {}
    ids = torch.tensor(handmade.TOKENS)
    with MaskedRouting(layers, "doge") as routing, torch.no_grad():
        routing.use(keep)
        # registered after MaskedRouting's own hooks, so these see the blocks' masked outputs
        handles = [
            layer.block.register_forward_hook(
                lambda m, a, out, i=layer.index: seen.__setitem__(
                    i, (a[0].reshape(-1, a[0].shape[-1]), out[0].reshape(-1, out[0].shape[-1]))
                )
            )
            for layer in layers
        ]
        try:
            logits = model(ids, attention_mask=torch.ones_like(ids)).logits
        finally:
            for handle in handles:
                handle.remove()
    return logits, [seen[layer.index] for layer in layers]


def _kept_only(layer, x, kept):
    """The block by hand, routing among ``kept`` experts only: for each token, the top-k of
    X[i] + Y[j] over the kept e = (i, j), softmax over k, Σ w·silu(d_e·x)·u_e, plus the
    shared SwiGLU MLP."""
    block = layer.block
    keys = int(block.num_experts**0.5)
    halves = (x @ block.router_gate.weight.float().T).reshape(2, x.shape[0], keys).detach()
    silu = torch.nn.functional.silu
    out = []
    for t in range(x.shape[0]):
        score = {e: float(halves[0, t, e // keys] + halves[1, t, e % keys]) for e in kept}
        top = sorted(kept, key=lambda e: -score[e])[: layer.top_k]
        weights = torch.softmax(torch.tensor([score[e] for e in top]), dim=0)
        y = sum(
            float(w) * silu(block.down_embed.weight[e].float() @ x[t]) * block.up_embed.weight[e]
            for e, w in zip(top, weights)
        )
        shared = block.down_proj.weight.float() @ (
            silu(block.gate_proj.weight.float() @ x[t]) * (block.up_proj.weight.float() @ x[t])
        )
        out.append(y + shared)
    return torch.stack(out)


def test_masked_evaluation_routes_among_the_kept_experts_only(model):
    """Any subset (not a key grid): each masked block equals the hand-written block that
    routes among the kept experts only; the mask changes the output, and use(None) is the
    plain model bit for bit."""
    layers, _ = handmade.capture(model)
    kept = [[0, 3, 5, 6, 9, 12, 14, 15], [1, 2, 4, 7, 8, 11, 13]]
    keep = np.zeros((2, 16), dtype=bool)
    for i, ids in enumerate(kept):
        keep[i, ids] = True
    plain, plain_blocks = _block_outputs(model, layers, None)
    masked, blocks = _block_outputs(model, layers, keep)
    assert (masked - plain).abs().max() > 1e-4
    for layer, ids, (x, y) in zip(layers, kept, blocks):
        assert torch.allclose(y, _kept_only(layer, x.float(), ids), atol=1e-5)
    ids = torch.tensor(handmade.TOKENS)
    with torch.no_grad():
        assert torch.equal(plain, model(ids, attention_mask=torch.ones_like(ids)).logits)


def test_a_key_sub_grid_prunes_to_the_masked_model_and_other_masks_are_refused(model, tmp_path):
    """Keys {0, 2} (experts 0, 2, 8, 10) and {1, 3} (5, 7, 13, 15): the pruned checkpoint has
    2·2 router rows and 4 experts and its logits equal the masked model's; a mask that is not
    a square key grid is refused in one line."""
    import json

    layers, _ = handmade.capture(model)
    kept = [[0, 2, 8, 10], [5, 7, 13, 15]]
    assert handmade.pruned_minus_masked(model, layers, tmp_path, kept) <= 1e-5
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert config["num_experts"] == 4
    from safetensors import safe_open

    with safe_open(str(tmp_path / "pruned" / "model.safetensors"), "pt") as f:
        router = f.get_tensor("model.layers.1.mlp.router_gate.weight")
        up = f.get_tensor("model.layers.1.mlp.up_embed.weight")
    original = model.model.layers[1].mlp
    assert torch.equal(router, original.router_gate.weight[[1, 3, 5, 7]])
    assert torch.equal(up, original.up_embed.weight[[5, 7, 13, 15]])

    mask = Mask(str(tmp_path / "source"), 16, "test", [], [[0, 1, 2, 3], [0, 1, 4, 5]])
    with pytest.raises(LensError, match="layer 0 .*not a square sub-grid") as info:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
