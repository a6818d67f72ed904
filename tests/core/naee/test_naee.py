"""NAEE's search against a brute force written here from the weights.

The reference runs each calibration sample alone and unpadded (the code under
test batches with left padding), takes each MoE block's input with its own
hook, computes the router logits, every expert's output and each family's
routing by hand from the weights, and scores every kept set of size r by
Σ_t ‖Z_t − Ẑ_t(S)‖².
"""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.errors import LensError
from core.families.layers import find_moe_layers
from core.model.options import ModelOptions
from core.naee.runner import run_naee
from tests.core.collect.conftest import TEXTS
from tests.core.collect.reference import expert_output
from tests.tiny_models import build_tiny_model

R = 4
MAX_LENGTH = 16
DATA = TEXTS  # lengths 2..16 tokens: batches are padded


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = {}

    def get(family: str):
        if family not in cache:
            root = tmp_path_factory.mktemp(f"naee-{family}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = build_tiny_model(family, root / "model")
            data = root / "calib.txt"
            data.write_text("\n".join(DATA) + "\n", encoding="utf-8")
            cache[family] = (folder, data)
        return cache[family]

    return get


def _options(folder, data, **extra) -> ModelOptions:
    return ModelOptions(
        model=str(folder),
        data=str(data),
        max_length=MAX_LENGTH,
        batch_size=4,
        device="cpu",
        dtype="float32",
        padding_side="left",
        **extra,
    )


def _hand_routing(family: str, logits: torch.Tensor, dropped: torch.Tensor, k: int, renorm: bool):
    """(weights [T, k], index [T, k]) of ``family`` with the dropped experts unselectable."""
    masked = logits.masked_fill(dropped, float("-inf"))
    if family == "gpt_oss":  # top-k of the logits, softmax over those k
        top, index = torch.topk(masked, k, dim=-1)
        return torch.softmax(top, dim=-1), index
    probs = torch.softmax(masked, dim=-1)
    top, index = torch.topk(probs, k, dim=-1)
    if renorm:
        top = top / top.sum(dim=-1, keepdim=True)
    return top, index


@torch.no_grad()
def hand_scorers(folder, family: str, out_tokens: list[int] | None = None) -> list:
    """Per layer: a function err(kept set) from the weights by hand
    (``out_tokens`` receives each layer's token count)."""
    out_tokens = [] if out_tokens is None else out_tokens
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    layers = find_moe_layers(model)
    inputs: dict[int, list[torch.Tensor]] = {layer.index: [] for layer in layers}
    handles = [
        layer.block.register_forward_pre_hook(
            lambda mod, args, l=layer.index, store=inputs: store[l].append(
                args[0].reshape(-1, args[0].shape[-1])
            )
        )
        for layer in layers
    ]
    try:
        for text in DATA:
            ids = tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
            model(torch.tensor([ids]))
    finally:
        for handle in handles:
            handle.remove()
    renorm = family == "mixtral" or bool(getattr(model.config, "norm_topk_prob", False))
    scorers = []
    for layer in layers:
        x = torch.cat(inputs[layer.index]).float()
        out_tokens.append(x.shape[0])
        router = layer.router
        logits = x @ router.weight.float().T
        if getattr(router, "bias", None) is not None:
            logits = logits + router.bias.float()
        num_experts, k = layer.num_experts, layer.top_k
        y = torch.stack([expert_output(layer.experts, family, x, e) for e in range(num_experts)], 1)

        def routed(dropped, logits=logits, y=y, k=k):
            weights, index = _hand_routing(family, logits, dropped, k, renorm)
            rows = torch.arange(y.shape[0])
            return sum(weights[:, j, None] * y[rows, index[:, j]] for j in range(k))

        z_layer = routed(torch.zeros(num_experts, dtype=torch.bool))

        def err(subset, routed=routed, z=z_layer, e=num_experts):
            dropped = torch.ones(e, dtype=torch.bool)
            dropped[list(subset)] = False
            return float(((z - routed(dropped)).double() ** 2).sum())

        scorers.append(err)
    return scorers


def brute_force(
    folder, family: str, r: int, out_tokens: list[int] | None = None
) -> list[dict[tuple[int, ...], float]]:
    """Per layer: err(S) of every kept set S of size r, from the weights by hand."""
    return [
        {s: err(s) for s in itertools.combinations(range(8), r)}
        for err in hand_scorers(folder, family, out_tokens)
    ]


def _kept(scores: np.ndarray, r: int) -> list[list[int]]:
    return [sorted(np.argsort(-row, kind="stable")[:r].tolist()) for row in scores]


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe", "olmoe", "gpt_oss"])
def test_exact_search_equals_a_brute_force_from_the_weights(tiny, family):
    folder, data = tiny(family)
    tokens: list[int] = []
    reference = brute_force(folder, family, R, tokens)
    result = run_naee(_options(folder, data), R, search="auto")
    assert result.metadata["search"] == "exact"
    assert result.metadata["tokens"] == tokens[-1]  # non-padding tokens only
    kept = _kept(result.scores, R)
    for layer, errors in enumerate(reference):
        best = min(errors, key=errors.get)
        assert kept[layer] == list(best), (family, layer)
        found = result.metadata["layers"][layer]
        assert found["method"] == "exact" and found["subsets_scored"] == len(errors) == 70
        np.testing.assert_allclose(found["objective"], errors[best], rtol=1e-4, atol=1e-9)
        # and the chosen set is not just any set: the worst set is clearly worse
        assert max(errors.values()) > 1.2 * errors[best]


def test_greedy_reports_its_gap_to_the_exact_search(tiny):
    folder, data = tiny("mixtral")
    reference = brute_force(folder, "mixtral", 3)
    result = run_naee(_options(folder, data), 3, search="greedy", report_gap=True)
    assert result.metadata["search"] == "greedy"
    for layer, errors in enumerate(reference):
        found = result.metadata["layers"][layer]
        kept = tuple(_kept(result.scores, 3)[layer])
        assert found["method"] == "greedy"
        assert found["subsets_scored"] == 8 + 7 + 6 + 5 + 4  # (E(E+1) - r(r+1)) / 2
        assert len(found["dropped_order"]) == 5 and not set(found["dropped_order"]) & set(kept)
        np.testing.assert_allclose(found["objective"], errors[kept], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(
            found["exact_objective"], min(errors.values()), rtol=1e-4, atol=1e-9
        )
        assert found["gap"] == pytest.approx(found["objective"] - found["exact_objective"])
        assert found["gap"] >= -1e-9


def test_greedy_follows_a_hand_written_backward_elimination(tiny):
    folder, data = tiny("olmoe")
    result = run_naee(_options(folder, data), 3, search="greedy")
    for layer, err in enumerate(hand_scorers(folder, "olmoe")):
        keep = list(range(8))
        order = []
        while len(keep) > 3:
            options = [tuple(e for e in keep if e != d) for d in keep]
            scores = [err(s) for s in options]
            position = scores.index(min(scores))  # ties: the lower dropped id
            order.append(keep[position])
            keep = list(options[position])
        assert result.metadata["layers"][layer]["dropped_order"] == order
        assert _kept(result.scores, 3)[layer] == keep


def test_lens_mask_naee_writes_a_mask_with_the_search_in_its_metadata(tiny, tmp_path):
    from lens_tui.cli import cli as main

    folder, data = tiny("gpt_oss")
    out = tmp_path / "naee.json"
    args = ["mask", "-c", "naee", "--model", str(folder), "--data", str(data), "--r", "4"]
    args += ["--max-length", str(MAX_LENGTH), "--device", "cpu", "--out", str(out), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["criterion"] == "naee" and doc["sources"] == [str(data)]
    assert doc["naee"]["search"] == "exact" and len(doc["naee"]["layers"]) == 2
    assert all(len(ids) == 4 for ids in doc["layers"])
    refused = CliRunner().invoke(main, ["mask", "-c", "naee", "--model", str(folder), "--r", "4",
                                        "--out", str(tmp_path / "x.json")])  # fmt: skip
    assert refused.exit_code != 0 and "--data" in refused.output
    assert not (tmp_path / "x.json").exists()


def test_a_family_without_masked_routing_is_refused(tiny, tmp_path, monkeypatch):
    import dataclasses

    from core.families import BY_BLOCK_CLASS

    folder, data = tiny("phimoe")
    # Every listed family masks now; one whose adapter has no masked routing (a new family
    # before its routing is written) stands in as PhiMoE without it.
    adapter = dataclasses.replace(BY_BLOCK_CLASS["PhimoeSparseMoeBlock"], masked_routing=None)
    monkeypatch.setitem(BY_BLOCK_CLASS, "PhimoeSparseMoeBlock", adapter)
    with pytest.raises(LensError, match="not supported"):
        run_naee(_options(folder, data), 4)


def test_r_below_top_k_is_refused(tiny):
    folder, data = tiny("mixtral")
    with pytest.raises(LensError, match="outside 2..8"):
        run_naee(_options(folder, data), 1)


@torch.no_grad()
def block_errors(folder, r: int) -> list[dict[tuple[int, ...], float]]:
    """err(S) from the real MoE block's forward, masked by lens evaluate's MaskedRouting."""
    from core.evaluate.masking import MaskedRouting

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    layers = find_moe_layers(model)
    inputs: dict[int, list[torch.Tensor]] = {layer.index: [] for layer in layers}
    handles = [
        layer.block.register_forward_pre_hook(
            lambda mod, args, l=layer.index, store=inputs: store[l].append(args[0].clone())
        )
        for layer in layers
    ]
    try:
        for text in DATA:
            model(
                torch.tensor([tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]])
            )
    finally:
        for handle in handles:
            handle.remove()
    out = []
    num_experts = layers[0].num_experts
    with MaskedRouting(layers) as routing:
        for layer in layers:
            x = torch.cat(inputs[layer.index], dim=1)  # the block is token-wise
            routing.use(None)
            z = layer.block(x)
            errors = {}
            for subset in itertools.combinations(range(num_experts), r):
                keep = np.ones((len(layers), num_experts), dtype=bool)
                keep[layer.index] = False
                keep[layer.index, list(subset)] = True
                routing.use(keep)
                errors[subset] = float(((z - layer.block(x)).double() ** 2).sum())
            out.append(errors)
    return out


@pytest.mark.parametrize("family", ["deepseek_v3", "qwen2_moe"])
def test_exact_search_equals_the_masked_blocks_own_output_error(tiny, family):
    # Grouped sigmoid routing (DeepSeek-V3) and an always-on shared expert (Qwen2-MoE): the
    # reference runs the whole MoE block, shared expert included, under lens evaluate's masking.
    folder, data = tiny(family)
    reference = block_errors(folder, R)
    result = run_naee(_options(folder, data), R)
    for layer, errors in enumerate(reference):
        best = min(errors, key=errors.get)
        assert _kept(result.scores, R)[layer] == list(best), (family, layer)
        np.testing.assert_allclose(
            result.metadata["layers"][layer]["objective"], errors[best], rtol=1e-3, atol=1e-9
        )
