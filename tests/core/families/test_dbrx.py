"""DBRX: the router returns only logits; the block's softmax, top-k and p-norm route them."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return handmade.tiny("dbrx")


def route(layer, x, token_ids):
    """softmax over E, top-k, divided by their p-norm; experts from the stacked w1/v1/w2."""
    mlp, p = layer.experts.mlp, layer.block.moe_normalize_expert_weights
    ffn = mlp.w1.shape[0] // layer.num_experts
    probs = torch.softmax(x @ layer.router.layer.weight.float().T, dim=-1)
    routed = []
    for t in range(x.shape[0]):
        top = sorted(range(layer.num_experts), key=lambda e: -float(probs[t, e]))[: layer.top_k]
        values = probs[t, top]
        weights = values / values.abs().pow(p).sum().pow(1 / p)
        slots = []
        for e, w in zip(top, weights):
            rows = slice(e * ffn, (e + 1) * ffn)
            hidden = F.silu(mlp.w1[rows].float() @ x[t]) * (mlp.v1[rows].float() @ x[t])
            y = hidden @ mlp.w2[rows].float()
            slots.append((e, float(w), float(y.norm())))
        routed.append(slots)
    return probs, routed


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    assert [layer.family.name for layer in layers] == ["dbrx"] * 2
    handmade.assert_matches(sums, handmade.reference(model, layers, route))


def test_evaluate_and_prune_equal_the_reference(model, tmp_path):
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert census.check_evaluate(model, layers) == ""
    assert census.check_prune(model, layers, tmp_path) == ""
    pruned = tmp_path / "pruned"
    config = json.loads((pruned / "config.json").read_text())
    assert (config["ffn_config"]["moe_num_experts"], config["ffn_config"]["moe_top_k"]) == (4, 2)
    from safetensors import safe_open

    with safe_open(str(pruned / "model.safetensors"), "pt") as f:
        w1 = f.get_tensor("transformer.blocks.1.ffn.experts.mlp.w1")
    ffn = model.config.ffn_config.ffn_hidden_size
    original = model.transformer.blocks[1].ffn.experts.mlp.w1.detach()
    kept = census.KEPT[1]  # layer 1 keeps these experts: their ffn rows, in order
    assert torch.equal(w1, torch.cat([original[e * ffn : (e + 1) * ffn] for e in kept]))
