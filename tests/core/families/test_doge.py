"""Doge's CDMoE: product-key experts; collected, with evaluation and pruning refused in one line."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

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


def test_evaluate_and_prune_refuse_in_one_line(model, tmp_path):
    layers, _ = handmade.capture(model)
    with pytest.raises(LensError, match="product-key router") as info:
        MaskedRouting(layers, "doge")
    assert "\n" not in str(info.value)
    model.save_pretrained(str(tmp_path / "source"))
    every = list(range(16))
    mask = Mask(str(tmp_path / "source"), 16, "test", [], [every, every])
    with pytest.raises(LensError, match="cannot prune Doge.*grid") as info:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert "\n" not in str(info.value)
