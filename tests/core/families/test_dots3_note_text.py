"""dots3 (dots3.note's language model, alone or in its multimodal wrapper): DeepSeek-V3's
sigmoid, grouped, biased routing."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module", params=["dots3_note_text", "dots3_note"])
def model(request):
    """The text model, and the multimodal dots3.note whose causal LM is that text model."""
    return handmade.tiny(request.param)


def route(layer, x, token_ids):
    """Sigmoid scores; score + bias picks the best groups (sum of their two best), then top-k
    inside them; weights are the chosen scores, renormalised, times the scaling factor."""
    gate = layer.router
    logits = x @ gate.weight.float().T
    experts, groups = logits.shape[1], gate.num_group
    size = experts // groups
    routed = []
    for t in range(x.shape[0]):
        scores = torch.sigmoid(logits[t])
        choice = [float(scores[e] + gate.e_score_correction_bias[e]) for e in range(experts)]
        group_score = [
            sum(sorted(choice[g * size : (g + 1) * size], reverse=True)[:2]) for g in range(groups)
        ]
        best = sorted(range(groups), key=lambda g: -group_score[g])[: gate.topk_group]
        allowed = [e for e in range(experts) if e // size in best]
        top = sorted(allowed, key=lambda e: -choice[e])[: layer.top_k]
        total = float(sum(scores[e] for e in top))
        slots = []
        for e in top:
            w = float(scores[e]) / (total + 1e-20) * gate.routed_scaling_factor
            y = handmade.swiglu_expert(
                layer.experts.gate_up_proj[e], layer.experts.down_proj[e], x[t]
            )
            slots.append((e, w, float(y.norm())))
        routed.append(slots)
    return torch.softmax(logits, dim=-1), routed


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    assert [layer.family.name for layer in layers] == ["dots3_note_text"] * 2
    assert layers[0].router.num_group == 2  # the grouping is exercised
    handmade.assert_matches(sums, handmade.reference(model, layers, route))


def test_evaluate_and_prune_equal_the_reference(model, tmp_path):
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert census.check_evaluate(model, layers) == ""
    assert census.check_prune(model, layers, tmp_path) == ""
