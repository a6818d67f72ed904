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


def test_evaluate_and_prune_equal_the_reference(model, tmp_path):
    """The census's masks keep the hash-routed layer whole and halve the learned one."""
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert census._kept(layers)[0] == list(range(layers[0].num_experts))
    assert census.check_evaluate(model, layers) == ""
    assert census.check_prune(model, layers, tmp_path) == ""


def test_the_pruned_checkpoint_keeps_the_hash_layer_and_pads_the_learned_one(model, tmp_path):
    """Hash layer bytes unchanged; the learned layer's kept experts first, then zero experts
    whose saved correction bias (``gate.bias``) is the most negative float32; the reloaded
    model's logits equal the in-memory masked model's."""
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    layers = find_moe_layers(model)
    experts = layers[0].num_experts
    kept = [list(range(experts)), [1, 2, 5, 6]]
    keep = np.zeros((2, experts), dtype=bool)
    for i, ids in enumerate(kept):
        keep[i, ids] = True
    with torch.no_grad(), MaskedRouting(layers, "v4") as routing:
        routing.use(keep)
        masked = census._logits(model)
    model.save_pretrained(str(tmp_path / "source"))
    mask = Mask(str(tmp_path / "source"), experts, "test", [], kept)
    result = prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert result.padded_per_layer == [0, experts - 4] and result.num_experts_after == experts
    before = load_file(str(tmp_path / "source" / "model.safetensors"))
    after = load_file(str(tmp_path / "out" / "model.safetensors"))
    for name, value in before.items():
        if ".layers.0." in name:  # the hash-routed layer, table included
            assert np.array_equal(after[name], value), name
    bias = after["model.layers.1.ffn.gate.bias"]
    assert np.array_equal(bias[:4], before["model.layers.1.ffn.gate.bias"][kept[1]])
    assert (bias[4:] == np.finfo(np.float32).min).all()
    for new, old in enumerate(kept[1]):
        name = "model.layers.1.ffn.experts.{}.w1.weight"
        assert np.array_equal(after[name.format(new)], before[name.format(old)])
    assert not after["model.layers.1.ffn.experts.7.w2.weight"].any()
    pruned = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"), dtype=torch.float32)
    assert (census._logits(pruned.eval()) - masked).abs().max() <= 1e-5


def test_a_mask_dropping_experts_of_the_hash_layer_is_refused_in_one_line(model, tmp_path):
    layers = find_moe_layers(model)
    experts = layers[0].num_experts
    keep = np.ones((2, experts), dtype=bool)
    keep[0, 3] = False
    with MaskedRouting(layers, "v4") as routing, pytest.raises(LensError) as info:
        routing.use(keep)
    message = str(info.value)
    assert "\n" not in message
    assert "MoE layer 0 is hash-routed and the mask keeps 7 of its 8 experts" in message
    assert "keep every expert in hash-routed layers" in message
    model.save_pretrained(str(tmp_path / "source"))
    every = list(range(experts))
    mask = Mask(str(tmp_path / "source"), experts, "test", [], [every[:4], every])
    with pytest.raises(LensError, match="MoE layer 0 .decoder layer 0. is hash-routed") as info:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_an_aimer_mask_keeps_the_checkpoints_hash_routed_layer_whole(model, tmp_path):
    """AIMER reads only the checkpoint: its hash-routed layer is found from the saved table."""
    from core.masks.make import make_mask
    from core.prune.aimer import aimer_checkpoint_scores

    model.save_pretrained(str(tmp_path / "source"))
    scores = aimer_checkpoint_scores(tmp_path / "source")
    assert scores.hash_routed_layers == (0,)
    mask = make_mask("aimer", aimer=scores, r=4)
    assert mask.kept_per_layer == [8, 4] and mask.to_json()["hash_routed_layers"] == [0]
