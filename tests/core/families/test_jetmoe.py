"""JetMoE: MLP experts and attention-head experts (MoA), two MoE layers per decoder layer."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return handmade.tiny("jetmoe")


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    assert [layer.name for layer in layers] == [
        "model.layers.0.mlp",
        "model.layers.0.self_attention.experts",
        "model.layers.1.mlp",
        "model.layers.1.self_attention.experts",
    ]
    assert model.config.activation_function == "silu"
    # The attention experts' output projection is applied to each slot's attention output:
    # recorded from reduce()'s input by wrapping it (the test's own, not the capture's hooks).
    attention: dict[int, torch.Tensor] = {}
    for layer in layers[1::2]:
        original = layer.block.reduce

        def reduce(layer_input, topo_info, i=layer.index, original=original):
            attention[i] = layer_input.detach().reshape(-1, *layer_input.shape[2:]).float()
            return original(layer_input, topo_info)

        layer.block.reduce = reduce

    def route(layer, x, token_ids):
        """Top-k of the logits, softmax over k; MLP expert: output_linear · (silu(a) ⊙ b) with
        (a, b) = input_linear · x; attention expert: output_linear · its head's output."""
        block = layer.block
        logits = x @ block.router.layer.weight.float().T
        routed = []
        for t in range(x.shape[0]):
            top = sorted(range(layer.num_experts), key=lambda e: -float(logits[t, e]))
            top = top[: layer.top_k]
            weights = torch.softmax(logits[t, top], dim=0)
            slots = []
            for slot, (e, w) in enumerate(zip(top, weights)):
                if layer.index % 2 == 0:
                    a, b = (block.input_linear.weight[e].float() @ x[t]).chunk(2)
                    y = block.output_linear.weight[e].float() @ (F.silu(a) * b)
                else:
                    y = block.output_linear.weight[e].float() @ attention[layer.index][t, slot]
                slots.append((e, float(w), float(y.norm())))
            routed.append(slots)
        return torch.softmax(logits, dim=-1), routed

    try:
        expected = handmade.reference(model, layers, route, at=lambda layer: layer.router)
    finally:
        for layer in layers[1::2]:
            del layer.block.reduce
    handmade.assert_matches(sums, expected)


def test_evaluate_and_prune_equal_the_reference(model, tmp_path):
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert census.check_evaluate(model, layers) == ""
    assert census.check_prune(model, layers, tmp_path) == ""
