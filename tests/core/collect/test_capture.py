"""Capture leaves the model untouched and records exactly the model's own routing.

Collection runs batched with padding (left and right); the reference runs each
sample alone without padding, reads the dense router logits from
``output_router_logits=True``, the routing from the router's own output, and
computes every selected expert's output y by hand from the weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.collect.capture import RouterCapture
from core.collect.runner import CollectConfig, run_collection
from core.families.layers import find_moe_layers
from core.formats.bundle import load_bundle
from tests.core.collect.conftest import TEXTS
from tests.core.collect.reference import per_sample_reference
from tests.tiny_models import EXTRA_FAMILIES, FAMILIES

MAX_LENGTH = 24


def _load(folder, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()


def _padded_batch(lengths: list[int], left: bool, vocab: int = 300):
    torch.manual_seed(0)
    longest = max(lengths)
    ids = torch.randint(3, vocab, (len(lengths), longest))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        if left:
            mask[row, longest - n :] = 1
        else:
            mask[row, :n] = 1
    return ids, mask


@pytest.mark.parametrize(
    "family,dtype",
    [(f, "float32") for f in FAMILIES + EXTRA_FAMILIES]
    + [("gpt_oss", "bfloat16"), ("mixtral", "bfloat16")],
)
def test_logits_bitwise_identical_with_and_without_capture(tiny_model, family, dtype):
    model = _load(tiny_model(family), getattr(torch, dtype))
    for left in (False, True):
        ids, mask = _padded_batch([9, 4, 7], left)
        with torch.no_grad():
            plain = model(ids, attention_mask=mask).logits
            with RouterCapture(find_moe_layers(model), energy=True) as capture:
                capture.begin_batch(mask)
                captured = model(ids, attention_mask=mask).logits
                capture.end_batch()
            after = model(ids, attention_mask=mask).logits
        assert torch.equal(plain, captured)
        assert torch.equal(plain, after)
        expected = "output" if family == "llama4" else "recording"
        assert capture.norm_method == [expected] * len(capture.layers)


def test_capture_detaches_completely(tiny_model):
    model = _load(tiny_model("gpt_oss"))
    layers = find_moe_layers(model)
    with RouterCapture(layers, energy=True):
        assert all(layer.router._forward_hooks for layer in layers)
        assert all("forward" in vars(layer.experts) for layer in layers)
    assert not any(layer.router._forward_hooks for layer in layers)
    assert not any("forward" in vars(layer.experts) for layer in layers)


@pytest.fixture(scope="module")
def references(tiny_model):
    """Per family: the model folder and the per-sample reference statistics."""
    cache = {}

    def get(family):
        if family not in cache:
            folder = tiny_model(family)
            model = _load(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            token_ids = [
                tokenizer(t, truncation=True, max_length=MAX_LENGTH)["input_ids"] for t in TEXTS
            ]
            cache[family] = (folder, per_sample_reference(model, family, token_ids), token_ids)
        return cache[family]

    return get


@pytest.mark.parametrize(
    "family,padding_side",
    [(f, side) for f in FAMILIES for side in ("right", "left")]
    + [(f, "left") for f in EXTRA_FAMILIES],
)
def test_collected_statistics_equal_the_per_sample_reference(
    references, family, padding_side, text_file, tmp_path
):
    folder, expected, token_ids = references(family)
    out = run_collection(
        CollectConfig.from_settings(
            model=str(folder),
            data=str(text_file),
            out=tmp_path / "b.safetensors",
            max_length=MAX_LENGTH,
            batch_size=4,
            padding_side=padding_side,
            device="cpu",
        )
    )
    bundle = load_bundle(out)
    assert bundle.example_ids.tolist() == list(range(len(TEXTS)))
    assert bundle.token_count.tolist() == [len(ids) for ids in token_ids]
    assert bundle.top_k == (1 if family == "llama4" else 2)
    assert bundle.num_experts == 8 and bundle.num_layers == 2
    np.testing.assert_allclose(bundle.prob_sum, expected["prob_sum"], rtol=1e-5, atol=1e-5)
    # Rows of prob_sum sum to the token count: a softmax over all E experts per token.
    np.testing.assert_allclose(
        bundle.prob_sum.sum(-1), np.repeat(bundle.token_count[:, None], 2, 1), rtol=1e-5
    )
    np.testing.assert_array_equal(bundle.get("topk_count"), expected["topk_count"])
    for name in ("weight_sum", "energy_sum", "act_norm_sum", "act_sqnorm_sum", "reap_sum"):
        np.testing.assert_allclose(
            bundle.get(name), expected[name], rtol=2e-4, atol=1e-5, err_msg=name
        )


def test_router_only_run_skips_norms_but_keeps_routing(references, text_file, tmp_path):
    folder, expected, _ = references("mixtral")
    out = run_collection(
        CollectConfig.from_settings(
            model=str(folder),
            data=str(text_file),
            out=tmp_path / "r.safetensors",
            max_length=MAX_LENGTH,
            batch_size=3,
            energy=False,
        )
    )
    bundle = load_bundle(out)
    assert sorted(n for n in bundle.tensors if n.endswith(("sum", "count"))) == [
        "prob_sum",
        "token_count",
        "topk_count",
        "weight_sum",
    ]
    np.testing.assert_array_equal(bundle.get("topk_count"), expected["topk_count"])
    np.testing.assert_allclose(bundle.get("weight_sum"), expected["weight_sum"], rtol=2e-4)
    assert bundle.metadata["energy"] == "false"


def test_other_experts_implementations_use_exact_per_slot_norms(tiny_model, references):
    """With an implementation we do not mirror (eager), norms come from extra per-slot calls."""
    folder, expected, token_ids = references("gpt_oss")
    model = _load(folder)
    model.set_experts_implementation("eager")
    ids = torch.tensor([token_ids[0]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        plain = model(ids, attention_mask=mask).logits
        with RouterCapture(find_moe_layers(model), energy=True) as capture:
            capture.begin_batch(mask)
            captured = model(ids, attention_mask=mask).logits
            sums = capture.end_batch()
    assert capture.norm_method == ["per-slot", "per-slot"]
    assert torch.equal(plain, captured)
    for name in ("topk_count", "energy_sum", "act_norm_sum", "reap_sum"):
        np.testing.assert_allclose(sums[name][0], expected[name][0], rtol=2e-4, atol=1e-5)


def test_model_without_moe_layers_is_refused(tmp_path):
    from transformers import AutoConfig

    from core.errors import LensError

    config = AutoConfig.for_model(
        "llama",
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(LensError, match="no MoE layers found"):
        find_moe_layers(model)
