"""Granite-MoE-hybrid (Granite 4): Mamba + attention layers with Granite-MoE blocks, end to end."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return handmade.tiny("granitemoehybrid")


def route(layer, x, token_ids):
    """Top-k of the router's logits, softmax over those k; experts SwiGLU from the weights."""
    logits = x @ layer.router.weight.float().T
    routed = []
    for t in range(x.shape[0]):
        top = sorted(range(logits.shape[1]), key=lambda e: -float(logits[t, e]))[: layer.top_k]
        weights = torch.softmax(logits[t, top], dim=0)
        slots = []
        for e, w in zip(top, weights):
            y = handmade.swiglu_expert(
                layer.experts.gate_up_proj[e], layer.experts.down_proj[e], x[t]
            )
            slots.append((e, float(w), float(y.norm())))
        routed.append(slots)
    return torch.softmax(logits, dim=-1), routed


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    assert [layer.family.name for layer in layers] == ["granitemoehybrid"] * 2
    handmade.assert_matches(sums, handmade.reference(model, layers, route))


def test_evaluate_and_prune_equal_the_reference(model, tmp_path):
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert census.check_evaluate(model, layers) == ""
    assert census.check_prune(model, layers, tmp_path) == ""
