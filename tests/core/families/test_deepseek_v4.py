"""DeepSeek-V4: a hash-routed layer (experts from a token-id table) and a learned-router layer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.collect.runner import _hash_routed_metadata  # noqa: E402
from core.errors import LensError  # noqa: E402
from core.evaluate.masking import MaskedRouting  # noqa: E402
from core.families.layers import find_moe_layers  # noqa: E402
from core.formats.mask import Mask  # noqa: E402
from core.prune.surgery import prune_checkpoint  # noqa: E402
from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return handmade.tiny("deepseek_v4")


def expert(experts, e, x):
    """V4's clamped SwiGLU: gate ≤ limit, |up| ≤ limit."""
    gate, up = (experts.gate_up_proj[e].float() @ x).chunk(2)
    hidden = F.silu(gate.clamp(max=experts.limit)) * up.clamp(-experts.limit, experts.limit)
    return experts.down_proj[e].float() @ hidden


def route(layer, x, token_ids):
    """scores = sqrt(softplus(logits)); hash layer: experts = tid2eid[token]; learned layer:
    top-k of score + bias; weights = chosen scores / (sum + 1e-20) × scaling, per slot."""
    gate = layer.router
    logits = x @ gate.weight.float().T
    routed = []
    for t in range(x.shape[0]):
        scores = F.softplus(logits[t]).sqrt()
        if hasattr(gate, "tid2eid"):
            top = [int(e) for e in gate.tid2eid[token_ids[t]]]  # may repeat: every slot counts
        else:
            choice = scores + gate.e_score_correction_bias
            top = sorted(range(len(choice)), key=lambda e: -float(choice[e]))[: layer.top_k]
        total = float(sum(scores[e] for e in top))
        slots = []
        for e in top:
            w = float(scores[e]) / (total + 1e-20) * gate.routed_scaling_factor
            slots.append((e, w, float(expert(layer.experts, e, x[t]).norm())))
        routed.append(slots)
    return torch.softmax(logits, dim=-1), routed


def test_one_hash_routed_layer_and_one_learned(model):
    layers = find_moe_layers(model)
    assert [layer.family.hash_routed(layer.router) for layer in layers] == [True, False]
    assert _hash_routed_metadata(layers) == {"hash_routed_layers": "[0]"}


def test_capture_equals_the_hand_written_routing(model):
    layers, sums = handmade.capture(model)
    handmade.assert_matches(sums, handmade.reference(model, layers, route))


def test_a_table_naming_one_expert_twice_counts_both_slots():
    model = handmade.tiny("deepseek_v4")
    table = model.model.layers[0].mlp.gate.tid2eid
    table[7] = torch.tensor([3, 3])  # token 7 appears twice in the first sample
    layers, sums = handmade.capture(model)
    handmade.assert_matches(sums, handmade.reference(model, layers, route))
    tokens = len(handmade.TOKENS[0])
    assert (sums["topk_count"].sum(axis=-1) == tokens * layers[0].top_k).all()
    others = [int(table[t][0]) == 3 or int(table[t][1]) == 3 for t in handmade.TOKENS[0] if t != 7]
    assert sums["topk_count"][0, 0, 3] == 4 + sum(others)  # 2 slots × 2 occurrences + the rest


def test_masks_keeping_the_hash_layer_whole_equal_the_reference(model):
    layers = find_moe_layers(model)
    kept = [list(range(layers[0].num_experts)), list(census.KEPT[1])]
    keep = np.zeros((2, layers[0].num_experts), dtype=bool)
    for i, ids in enumerate(kept):
        keep[i, ids] = True
    ids = torch.tensor(handmade.TOKENS)
    with torch.no_grad():
        with census.reference_mask(model, layers, kept):
            reference = model(ids).logits
        with MaskedRouting(layers, "v4") as routing:
            routing.use(keep)
            masked = model(ids).logits
        plain = model(ids).logits
    assert (masked - plain).abs().max() > 1e-4  # the mask matters here
    assert (masked - reference).abs().max() <= 1e-6


def test_a_mask_dropping_experts_of_the_hash_layer_is_refused_in_one_line(model, tmp_path):
    layers = find_moe_layers(model)
    with pytest.raises(LensError, match="hash-routed") as info:
        census.check_evaluate(model, layers)
    assert "\n" not in str(info.value)
    model.save_pretrained(str(tmp_path / "source"))
    every = list(range(layers[0].num_experts))
    mask = Mask(str(tmp_path / "source"), len(every), "test", [], [every, every])
    with pytest.raises(LensError, match="cannot prune DeepSeek-V4.*token-id table") as info:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()
