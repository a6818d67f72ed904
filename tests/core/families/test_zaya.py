"""Zaya: an MLP router over E experts and a skip expert (id E in the bundle)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.errors import LensError  # noqa: E402
from core.formats.mask import Mask  # noqa: E402
from core.prune.surgery import prune_checkpoint  # noqa: E402
from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module")
def model():
    model = handmade.tiny("zaya")
    with torch.no_grad():  # the skip expert's bias (−1) would hide it from a random router
        for layer in model.model.layers:
            layer.mlp.gate.balancing_biases[-1] = 0.3
    return model


def linear(module, x):
    return x @ module.weight.float().T + (module.bias.float() if module.bias is not None else 0)


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    skip = layers[0].num_experts - 1
    assert (skip, model.config.hidden_act) == (model.config.num_experts, "silu")
    states: dict[int, torch.Tensor | None] = {}

    def keep_state(module, args, kwargs, i):
        state = kwargs.get("router_states")
        states[i] = None if state is None else state.reshape(-1, state.shape[-1]).float()

    handles = [
        layer.router.register_forward_pre_hook(
            lambda m, a, k, i=layer.index: keep_state(m, a, k, i), with_kwargs=True
        )
        for layer in layers
    ]

    def route(layer, x, token_ids):
        """down_proj (+ the previous layer's router state × scale), RMSNorm, two GELU layers,
        out_proj to E + 1 logits; softmax + balancing biases choose; weight = probability;
        the skip expert (id E) computes nothing."""
        gate, mlp = layer.router, layer.router.router_mlp
        h = linear(gate.down_proj, x)
        if gate.use_eda and states[layer.index] is not None:
            h = h + states[layer.index] * gate.router_states_scale.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + mlp.norm.variance_epsilon)
        h = F.gelu(linear(mlp.fc2, F.gelu(linear(mlp.fc1, h * mlp.norm.weight.float()))))
        probs = torch.softmax(h @ mlp.out_proj.weight.float().T, dim=-1)
        routed = []
        for t in range(x.shape[0]):
            choice = probs[t] + gate.balancing_biases
            top = sorted(range(len(choice)), key=lambda e: -float(choice[e]))[: layer.top_k]
            slots = []
            for e in top:
                if e == skip:
                    slots.append((e, 0.0, 0.0))
                    continue
                y = handmade.swiglu_expert(
                    layer.experts.gate_up_proj[e], layer.experts.down_proj[e], x[t]
                )
                slots.append((e, float(probs[t, e]), float(y.norm())))
            routed.append(slots)
        return probs, routed

    try:
        expected = handmade.reference(model, layers, route)
    finally:
        for handle in handles:
            handle.remove()
    assert expected["topk_count"][:, :, skip].sum() > 0  # some tokens skip: the case is tested
    handmade.assert_matches(sums, expected)


def test_evaluate_equals_the_reference_and_prune_refuses_in_one_line(model, tmp_path):
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert census.check_evaluate(model, layers) == ""
    model.save_pretrained(str(tmp_path / "source"))
    every = list(range(layers[0].num_experts))
    mask = Mask(str(tmp_path / "source"), len(every), "test", [], [every, every])
    with pytest.raises(LensError, match="cannot prune Zaya.*skip expert") as info:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert "\n" not in str(info.value)
