"""``reap_literal_*``: REAP exactly as Cerebras' observer computes it, against a transcription.

The reference below transcribes REAP's pruning-criterion formulas
(CerebrasResearch/reap, ``src/reap/observer.py``) for one unpadded sample at
a time: ``selected = topk(router_logits, k)``, ``w = softmax(router_logits)``
over all E (float32), divided by the selected experts' sum only when the
config has ``norm_topk_prob = true`` (then clamped at float32 eps), and
``reap[e] = mean over the tokens that selected e of w[t, e]·‖expert_e(x_t)‖``
with ‖y‖ from the expert weights by hand. Collection runs batched and
left-padded, and must give the same per-sample sums and counts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.collect.runner import CollectConfig, run_collection
from core.families.layers import find_moe_layers
from core.formats.bundle import load_bundle
from core.masks.criteria import criterion_scores
from tests.core.collect.conftest import TEXTS
from tests.core.collect.reference import expert_output
from tests.tiny_models import build_tiny_model

MAX_LENGTH = 24


@torch.no_grad()
def reap_transcription(model, family: str, token_ids: list[list[int]]):
    """Per sample ``(sum of w‖y‖, count)`` ``[N, L, E]`` by REAP's formulas, one sample at a time."""
    layers = find_moe_layers(model)
    renormalise = bool(getattr(model.config, "norm_topk_prob", False))
    shape = (len(token_ids), len(layers), layers[0].num_experts)
    sums, counts = np.zeros(shape), np.zeros(shape)
    for i, ids in enumerate(token_ids):
        hidden = {}
        handles = [
            layer.block.register_forward_pre_hook(
                lambda mod, args, l=layer.index, h=hidden: h.__setitem__(
                    l, args[0].reshape(-1, args[0].shape[-1])
                )
            )
            for layer in layers
        ]
        try:
            result = model(torch.tensor([ids]), output_router_logits=True)
        finally:
            for handle in handles:
                handle.remove()
        for layer in layers:
            l = layer.index
            router_logits = result.router_logits[l]
            _, selected = torch.topk(router_logits, layer.top_k, dim=-1)
            weights = torch.softmax(router_logits, dim=1, dtype=torch.float)
            if renormalise:
                weights = weights / torch.gather(weights, 1, selected).sum(dim=-1, keepdim=True)
                weights = torch.clamp(weights, min=torch.finfo(weights.dtype).eps)
            for e in range(layer.num_experts):
                active = (selected == e).any(dim=-1)
                if not active.any():
                    continue
                y = expert_output(layer.experts, family, hidden[l][active], e)
                sums[i, l, e] = float((y.norm(dim=-1) * weights[active, e]).sum())
                counts[i, l, e] = int(active.sum())
    return sums, counts


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    cache = {}

    def get(family: str, **overrides):
        key = (family, tuple(sorted(overrides.items())))
        if key not in cache:
            root = tmp_path_factory.mktemp(f"literal-{family}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = build_tiny_model(family, root / "model")
            if overrides:  # e.g. norm_topk_prob on Qwen3: rewrite config.json
                import json

                config = json.loads((folder / "config.json").read_text())
                config.update(overrides)
                (folder / "config.json").write_text(json.dumps(config))
            text = root / "calib.txt"
            text.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
            out = run_collection(
                CollectConfig.from_settings(
                    model=str(folder),
                    data=str(text),
                    out=root / "b.safetensors",
                    max_length=MAX_LENGTH,
                    batch_size=4,
                    padding_side="left",
                    device="cpu",
                )
            )
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            tokenizer = AutoTokenizer.from_pretrained(folder)
            ids = [tokenizer(t, truncation=True, max_length=MAX_LENGTH)["input_ids"] for t in TEXTS]
            cache[key] = (load_bundle(out), reap_transcription(model, family, ids))
        return cache[key]

    return get


@pytest.mark.parametrize("family", ["mixtral", "gpt_oss", "deepseek_v3", "qwen3_moe"])
def test_reap_literal_equals_a_transcription_of_reaps_formulas(collected, family):
    bundle, (sums, counts) = collected(family)
    np.testing.assert_array_equal(bundle.get("reap_literal_count"), counts)
    np.testing.assert_allclose(bundle.get("reap_literal_sum"), sums, rtol=2e-4, atol=1e-5)
    literal = criterion_scores("reap-literal", [bundle])
    routed = counts.sum(axis=0)
    expected = np.where(routed > 0, sums.sum(axis=0) / np.maximum(routed, 1), 0.0)
    np.testing.assert_allclose(literal, expected, rtol=2e-4, atol=1e-6)


def test_reap_literal_differs_from_reap_where_the_model_renormalises_and_reap_does_not(
    collected,
):
    # Mixtral renormalises over the top-k, its config has no norm_topk_prob: REAP's code
    # weights by the unrenormalised softmax probability, so every score is smaller.
    bundle, _ = collected("mixtral")
    reap = criterion_scores("reap", [bundle])
    literal = criterion_scores("reap-literal", [bundle])
    routed = reap > 0
    assert np.all(literal[routed] < reap[routed])


def test_deepseek_literal_selection_is_not_the_models(collected):
    # DeepSeek-V3 selects with sigmoid + correction bias over groups; REAP takes the top-k of
    # the raw logits, so its counts differ from the model's topk_count.
    bundle, _ = collected("deepseek_v3")
    assert not np.array_equal(bundle.get("reap_literal_count"), bundle.get("topk_count"))


def test_reap_literal_equals_reap_where_the_models_weights_are_the_renormalised_softmax(
    collected,
):
    bundle, _ = collected("qwen3_moe", norm_topk_prob=True)
    np.testing.assert_array_equal(bundle.get("reap_literal_count"), bundle.get("topk_count"))
    np.testing.assert_allclose(
        criterion_scores("reap-literal", [bundle]),
        criterion_scores("reap", [bundle]),
        rtol=1e-5,
        atol=1e-7,
    )
