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


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A Zaya saved and loaded back, with routed balancing biases near −1 so that some tokens
    skip. transformers' loader always resets the skip class's bias to −1 (ZayaRouter's
    ``_init_weights`` writes it unguarded), so a model with another skip bias in memory is
    not what its checkpoint, or a pruned one, loads as: the comparison starts from disk."""
    from transformers import AutoModelForCausalLM

    model = handmade.tiny("zaya")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in model.model.layers:
            biases = layer.mlp.gate.balancing_biases
            biases[:-1] = -1.0 + 0.01 * torch.rand(len(biases) - 1, generator=generator)
    folder = tmp_path_factory.mktemp("zaya")
    model.save_pretrained(str(folder))
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()


def test_evaluate_equals_the_reference_and_the_pruned_checkpoint(loaded, tmp_path):
    """The census's mask keeps the skip class (id E) in place of a routed expert; the pruned
    checkpoint's logits equal the masked model's, its router rows and biases are the kept
    ones with the skip class's last, and num_experts is the routed count kept. A mask that
    drops the skip class, which a pruned Zaya always scores, is refused in one line."""
    import json

    _, problem, layers = census.check_collect(loaded)
    assert problem == ""
    skip = layers[0].num_experts - 1
    _, sums = handmade.capture(loaded)
    assert sums["topk_count"][:, :, skip].sum() > 0  # some tokens skip
    assert census.check_evaluate(loaded, layers) == ""
    kept = [[0, 2, 5, skip], [1, 3, 6, skip]]
    assert handmade.pruned_minus_masked(loaded, layers, tmp_path, kept) <= 1e-5
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert config["num_experts"] == 3
    from safetensors import safe_open

    gate = loaded.model.layers[1].mlp.gate
    with safe_open(str(tmp_path / "pruned" / "model.safetensors"), "pt") as f:
        biases = f.get_tensor("model.layers.1.mlp.gate.balancing_biases")
        out_proj = f.get_tensor("model.layers.1.mlp.gate.router_mlp.out_proj.weight")
    assert torch.equal(biases, gate.balancing_biases[kept[1]])
    assert torch.equal(out_proj, gate.router_mlp.out_proj.weight[kept[1]])

    every = list(range(skip + 1))
    mask = Mask(str(tmp_path / "source"), skip + 1, "test", [], [every, every[:-1]])
    with pytest.raises(LensError, match="layer 1 drops the skip expert") as info:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
