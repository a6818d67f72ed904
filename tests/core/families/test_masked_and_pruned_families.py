"""PhiMoE, Gemma-4, Aria, A.X K2, Beam, MiniMax-M3-VL, Inkling(-2), Qwen4-Exp, dots3.note,
DeepSeek-V4 and LongCat-Flash: evaluate and prune.

For each type: capture leaves the logits bitwise unchanged; the in-memory
masked model equals the census's adapter-free *reference* (dropped experts'
router logits and selection biases at −inf); and ``lens prune``'s checkpoint
reloads with logits equal to the in-memory masked model's. CI runs one type
per routing kind; ``LENS_FAMILY_MATRIX=full`` runs them all.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from core.errors import LensError  # noqa: E402
from core.formats.mask import Mask  # noqa: E402
from core.prune.surgery import prune_checkpoint  # noqa: E402
from scripts import families_census as census  # noqa: E402
from tests.core.families import handmade  # noqa: E402
from tests.tiny_models import build_tiny_model_of_type, tiny_config_for_type  # noqa: E402

#: (model_type, family, run in CI)
CASES = [
    ("phimoe", "phimoe", True),
    ("gemma4_text", "gemma4", True),
    ("gemma4", "gemma4", False),
    ("aria_text", "aria", False),
    ("axk2", "axk2", False),
    ("beam", "beam", False),
    ("minimax_m3_vl_text", "minimax_m3_vl", False),
    ("inkling_text", "inkling", True),
    ("inkling2_text", "inkling2", False),
    ("inkling2_loop_text", "inkling2", False),
    ("qwen4_exp", "qwen4_exp", False),
    ("dots3_note", "dots3_note_text", False),
    ("deepseek_v4", "deepseek_v4", False),
    ("longcat_flash", "longcat_flash", False),  # CI: the LongCat test below
]
FULL = os.environ.get("LENS_FAMILY_MATRIX") == "full"


def _build(model_type: str, **config_overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not config_overrides:
            return build_tiny_model_of_type(model_type)
        from transformers import AutoModelForCausalLM

        config = tiny_config_for_type(model_type)
        for key, value in config_overrides.items():
            setattr(config, key, value)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        with torch.no_grad():  # peaked routing and a non-trivial bias, as the census builds it
            for name, param in model.named_parameters():
                if name.endswith("gate.weight"):
                    param.mul_(8.0)
        for name, buffer in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buffer.copy_(torch.randn_like(buffer) * 0.1)
        return model.eval()


@pytest.mark.parametrize(
    "model_type,family",
    [
        pytest.param(
            t,
            f,
            marks=()
            if FULL or ci
            else pytest.mark.skip(reason="full matrix: LENS_FAMILY_MATRIX=full"),
        )
        for t, f, ci in CASES
    ],
)
def test_masked_model_equals_the_reference_and_the_pruned_checkpoint(tmp_path, model_type, family):
    model = _build(model_type)
    found, problem, layers = census.check_collect(model)
    assert (found, problem) == (family, "")
    assert census.check_evaluate(model, layers) == ""
    assert handmade.pruned_minus_masked(model, layers, tmp_path) <= 1e-5


def test_axk2_with_groups_prunes_to_its_masked_model(tmp_path):
    """A.X K2's large releases group experts and fill unselected groups with 0.0, not −inf;
    masking must keep a dropped expert of an unselected group unselectable all the same."""
    model = _build("axk2", n_group=2, topk_group=1)
    _, problem, layers = census.check_collect(model)
    assert problem == ""
    assert layers[0].router.num_group == 2
    assert handmade.pruned_minus_masked(model, layers, tmp_path) <= 1e-5


def test_uneven_masks_are_refused_with_one_line(tmp_path):
    model = _build("inkling_text")
    _, _, layers = census.check_collect(model)
    model.save_pretrained(str(tmp_path / "source"))
    mask = Mask(
        model=str(tmp_path / "source"),
        num_experts=8,
        criterion="test",
        sources=[],
        layers=[[0, 1, 2, 3], [0, 1, 2]],
    )
    with pytest.raises(LensError) as error:
        prune_checkpoint(tmp_path / "source", mask, tmp_path / "pruned")
    message = str(error.value)
    assert "\n" not in message
    assert "different numbers of experts" in message and "lens mask --r" in message
    assert not (tmp_path / "pruned").exists()


@pytest.mark.parametrize(
    "model_type,wrong",
    [
        ("phimoe", "logits_top_k_softmax"),  # sparsemixer's band softmax is not softmax over k
        ("inkling_text", "no_shared_share"),  # the shared experts take part in the softmax
    ],
)
def test_the_reference_catches_a_wrong_masked_routing(model_type, wrong):
    from core.families import routing

    model = _build(model_type)
    _, _, layers = census.check_collect(model)
    if wrong == "logits_top_k_softmax":
        route = routing.logits_top_k_softmax
    else:
        good = layers[0].family.masked_routing

        def route(router, logits, dropped, inputs=()):
            masked, weights, index, gammas = good(router, logits, dropped, inputs)
            return masked, weights / weights.sum(dim=-1, keepdim=True), index, gammas

    family = dataclasses.replace(layers[0].family, masked_routing=route)
    layers = [dataclasses.replace(layer, family=family) for layer in layers]
    assert "differ from the reference" in census.check_evaluate(model, layers)


def test_longcat_keeps_any_zero_computation_experts_and_rewrites_both_counts(tmp_path):
    """LongCat-Flash: 6 routed experts (ids 0-5) and 2 zero-computation ones (6, 7). A mask
    keeping 2 routed + 2 identity experts per layer (the census's keeps 3 + 1) prunes to a
    config saying so; a mask splitting the kinds differently per layer is refused in one line
    (the config holds one count of each)."""
    import json

    from core.families.layers import find_moe_layers

    model = _build("longcat_flash", num_layers=2)  # the tiny model has one
    layers = find_moe_layers(model)
    assert len(layers) == 2
    routed = model.config.n_routed_experts
    assert (routed, model.config.zero_expert_num, layers[0].num_experts) == (6, 2, 8)
    assert census.check_evaluate(model, layers) == ""
    kept = [[1, 4, 6, 7], [0, 5, 6, 7]]
    assert handmade.pruned_minus_masked(model, layers, tmp_path, kept) <= 1e-5
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert (config["n_routed_experts"], config["zero_expert_num"]) == (2, 2)

    uneven = Mask(str(tmp_path / "source"), 8, "test", [], [[0, 1, 2, 6], [0, 1, 6, 7]])
    with pytest.raises(LensError) as error:
        prune_checkpoint(tmp_path / "source", uneven, tmp_path / "other")
    message = str(error.value)
    assert "\n" not in message and "same number of routed experts" in message
    assert not (tmp_path / "other").exists()

    from core.prune.aimer import aimer_scores  # zero-computation experts have no weights to score

    with pytest.raises(LensError, match="aimer scores experts by their weights.*zero-computation"):
        aimer_scores(tmp_path / "source")


def test_longcat_collects_where_reaps_literal_top_k_differs_from_its_choice(monkeypatch):
    """With a correction bias the model's choice and REAP's literal top-k of the softmax
    differ, so capture computes the literal experts' norms itself; LongCat-Flash's experts
    cannot run one slot alone, so every slot is passed with a one-hot weight. It crashed
    ("not enough values to unpack") before."""
    from core.collect.capture import RouterCapture

    calls = []
    real = RouterCapture._unit_norms

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(RouterCapture, "_unit_norms", staticmethod(counting))
    model = _build("longcat_flash", num_layers=2)
    family, problem, _ = census.check_collect(model)
    assert (family, problem) == ("longcat_flash", "")
    assert calls  # the literal path ran
