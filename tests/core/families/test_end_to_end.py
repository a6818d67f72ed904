"""Families added beyond the first six, end to end on tiny random models of the real classes.

For each: capture leaves the logits bitwise unchanged and its statistics add
up; the in-memory masked model equals the *reference* (the same model with the
dropped experts' router logits at −inf where the router computes them, and
selection biases at −inf), built in ``scripts/families_census.py`` without the
adapters; and ``lens prune``'s checkpoint reloads cleanly with logits equal to
the reference's. The whole matrix of transformers' MoE types is
``python -m scripts.families_census``; these are a representative subset, one
per routing kind and checkpoint layout.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from scripts import families_census as census  # noqa: E402
from tests.tiny_models import build_tiny_model_of_type  # noqa: E402

#: (model_type, family): sigmoid-grouped, softmax (+shared, always renormalised, not
#: renormalised), sigmoid with a block-level bias, softmax + [1, E] bias with per-expert
#: weights, logits top-k (Granite's saved layout), a Mamba hybrid, and Qwen4-Exp's
#: hyper-connection streams around a Qwen3-Next block.
CASES = [
    ("glm4_moe", "glm4_moe"),
    ("qwen3_next", "qwen3_next"),
    ("qwen3_5_moe_text", "qwen3_5_moe"),
    ("minimax_m2", "minimax_m2"),
    ("ernie4_5_moe", "ernie4_5_moe"),
    ("granitemoe", "granitemoe"),
    ("jamba", "jamba"),
    ("nemotron_h", "nemotron_h"),
    ("llama4_text", "llama4"),
    ("lfm2_moe", "lfm2_moe"),
    ("qwen4_exp_text", "qwen4_exp"),
]


@pytest.mark.parametrize("model_type,family", CASES, ids=[c[0] for c in CASES])
def test_collect_evaluate_and_prune_match_the_independent_reference(tmp_path, model_type, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_model_of_type(model_type)
        found, problem, layers = census.check_collect(model)
        assert (found, problem) == (family, "")
        assert census.check_evaluate(model, layers) == ""
        assert census.check_prune(model, layers, tmp_path) == ""


def test_the_reference_catches_a_wrong_routing():
    """Qwen3.5-MoE always renormalises; a masked routing that does not is caught."""
    from core.families import by_name
    from core.families.routing import softmax_top_k

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_model_of_type("qwen3_5_moe_text")
        _, _, layers = census.check_collect(model)
    wrong = softmax_top_k(always_renorm=False, cast=True)
    family = dataclasses.replace(by_name("qwen3_5_moe"), masked_routing=wrong)
    layers = [dataclasses.replace(layer, family=family) for layer in layers]
    assert "differ from the reference" in census.check_evaluate(model, layers)


def test_census_command_reports_types_and_counts(capsys):
    assert census.main(["--json", "mixtral", "llama"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"] == {
        "moe_types": 1, "collect": 1, "evaluate": 1, "prune": 1, "not_built": 0
    }  # fmt: skip
    (row,) = doc["types"]
    assert (row["model_type"], row["family"], row["collect"], row["evaluate"], row["prune"]) == (
        "mixtral", "mixtral", "ok", "ok", "ok"
    )  # fmt: skip
    assert doc["not_moe"] == ["llama"]


def test_gemma4_prob_sum_is_its_routers_own_softmax_not_a_softmax_of_it():
    """Gemma-4's router returns probabilities; softmax of those would flatten them."""
    import torch

    from core.collect.capture import RouterCapture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_model_of_type("gemma4_text")
    found, problem, layers = census.check_collect(model)
    assert (found, problem) == ("gemma4", "")
    seen = []
    handle = layers[0].router.register_forward_hook(lambda m, a, out: seen.append(out[0]))
    ids = torch.tensor(census.TOKENS)
    with RouterCapture(layers, energy=False) as capture, torch.no_grad():
        capture.begin_batch(torch.ones_like(ids))
        model(ids, attention_mask=torch.ones_like(ids))
        sums = capture.end_batch()
    handle.remove()
    expected = seen[0].float().reshape(ids.shape[0], ids.shape[1], -1).sum(dim=1).numpy()
    assert abs(sums["prob_sum"][:, 0] - expected).max() < 1e-5
    flattened = torch.softmax(seen[0].float(), dim=-1).reshape(*ids.shape, -1).sum(dim=1).numpy()
    assert abs(flattened - expected).max() > 1e-3  # the test can tell the two apart
