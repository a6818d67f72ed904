"""lens evaluate and lens predict-vs-actual as a user runs them: a real subprocess on a tiny
GPT-OSS, numbers checked against the bundle by hand, and one-line refusals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from tests.lens_tui.cli_helpers import assert_clean_error, lens

pytest.importorskip("torch")
pytest.importorskip("transformers")

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Mixture-of-experts models route every token to a few experts.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "def add(a, b): return a + b",
    "Numbers like 3.14159 and 2.71828 appear in text too.",
    "Router probabilities are summed per sample and per layer.",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from core.collect.config import CollectConfig
    from core.collect.runner import run_collection
    from tests.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("evaluate_cli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_tiny_model("gpt_oss", root / "model")
    data = root / "heldout.txt"
    data.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    bundle = root / "heldout.safetensors"
    run_collection(
        CollectConfig.from_settings(model=str(model), data=str(data), out=bundle, device="cpu")
    )
    masks = []
    for criterion, r in (("mass", 4), ("frequency", 3), ("energy", 2)):
        out = root / f"{criterion}.json"
        done = lens("mask", bundle, "--criterion", criterion, "--r", r, "--out", out)
        assert done.returncode == 0, done.stderr
        masks.append(out)
    evaluation = root / "eval.json"
    done = lens(
        "evaluate", "--model", model, "--masks", *masks, "--data", data, "--out", evaluation,
        "--batch-size", 4, "--json", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {
        "root": root,
        "model": model,
        "data": data,
        "bundle": bundle,
        "masks": masks,
        "eval": evaluation,
        "stdout": done.stdout,
    }


def test_evaluate_writes_the_results_json(setup):
    doc = json.loads(setup["eval"].read_text())
    assert json.loads(setup["stdout"]) == doc  # --json prints what --out wrote
    assert doc["format"] == "expert-calibration-lens/evaluation"
    assert doc["dataset"] == "heldout" and doc["samples"] == len(TEXTS)
    assert [m["name"] for m in doc["masks"]] == ["mass", "frequency", "energy"]
    for entry, path in zip(doc["masks"], setup["masks"]):
        mask = json.loads(path.read_text())
        assert entry["layers"] == mask["layers"] and entry["path"] == str(path)
        assert entry["loss_increase"] == pytest.approx(entry["loss"] - doc["baseline"]["loss"])
        assert entry["perplexity"] == pytest.approx(np.exp(entry["loss"]))
        assert 0.0 <= entry["top1_agreement"] <= 1.0
    assert doc["baseline"]["perplexity"] == pytest.approx(np.exp(doc["baseline"]["loss"]))


def test_predict_vs_actual_against_the_bundle_by_hand(setup):
    from safetensors.numpy import load_file

    done = lens("predict-vs-actual", setup["eval"], setup["bundle"], "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    evaluation = json.loads(setup["eval"].read_text())
    tensors = load_file(str(setup["bundle"]))
    prob = tensors["prob_sum"].astype(np.float64).sum(axis=0) / tensors["token_count"].sum()
    masses = []
    for point, entry in zip(report["points"], evaluation["masks"]):
        per_layer = [
            sum(prob[layer, e] for e in kept) for layer, kept in enumerate(entry["layers"])
        ]
        assert point["retained_mass"] == pytest.approx(np.mean(per_layer), abs=1e-9)
        assert point["loss_increase"] == entry["loss_increase"]
        masses.append(np.mean(per_layer))
    # Spearman by the textbook formula (these three values have no ties).
    increases = [e["loss_increase"] for e in evaluation["masks"]]
    d = np.argsort(np.argsort(masses)) - np.argsort(np.argsort(increases))
    rho = 1 - 6 * float((d**2).sum()) / (3 * (9 - 1))
    assert report["spearman"]["retained_mass_vs_loss_increase"] == pytest.approx(rho)

    # A folder gives its bundles and its evaluation results (mask files in it are not results).
    folder = lens("predict-vs-actual", setup["root"], "--json")
    assert folder.returncode == 0, folder.stderr
    assert json.loads(folder.stdout) == report

    table = lens("predict-vs-actual", setup["eval"], setup["bundle"], setup["masks"][0])
    assert table.returncode == 0, table.stderr
    assert "mass kept" in table.stdout and "Spearman" in table.stdout
    assert "predicted vs actual" in table.stdout  # the scatter's title
    assert "frequency" not in table.stdout  # a mask file given: only that mask is shown


def test_evaluate_table_output(setup):
    done = lens(
        "evaluate", "-m", setup["model"], setup["masks"][0], "-d", setup["data"], timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "original" in done.stdout and "mass" in done.stdout and "Δ loss" in done.stdout


def test_bad_inputs_are_one_clear_line(setup, tmp_path):
    other = json.loads(setup["masks"][0].read_text())
    other.update(num_experts=16)
    other_path = tmp_path / "other-model.json"
    other_path.write_text(json.dumps(other))
    result = lens(
        "evaluate", "-m", setup["model"], "--masks", other_path, "-d", setup["data"], timeout=300
    )
    assert_clean_error(result, str(other_path), "mask is for 16 experts per layer")

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = lens("evaluate", "-m", setup["model"], "--masks", setup["masks"][0], "-d", empty)
    assert_clean_error(result, str(empty), "empty file")

    result = lens("evaluate", "-m", setup["model"], "-d", setup["data"], "-o", tmp_path / "x.txt")
    assert_clean_error(result, "must end in .json")

    result = lens("predict-vs-actual", setup["bundle"])
    assert_clean_error(result, "no evaluation file given")

    result = lens("predict-vs-actual", setup["masks"][0], setup["bundle"], tmp_path / "nope.json")
    assert_clean_error(result, "nope.json", "no such file")

    unevaluated = tmp_path / "unevaluated.json"
    unevaluated.write_text(setup["masks"][1].read_text())
    result = lens("predict-vs-actual", setup["eval"], setup["bundle"], unevaluated)
    assert_clean_error(result, str(unevaluated), "in none of the evaluations")


def test_evaluate_reports_loss_increase_intervals(setup):
    doc = json.loads(setup["eval"].read_text())
    for entry in doc["masks"]:
        lo, hi = entry["loss_increase_ci"]
        assert lo <= entry["loss_increase"] <= hi


def test_predict_vs_actual_reports_predictors_and_their_tests(setup):
    done = lens(
        "predict-vs-actual", setup["eval"], setup["bundle"], "--json",
        "--replicates", 50, "--permutations", 50, "--group", "heldout=held",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    from core.predictors import PREDICTORS

    for point in report["points"]:
        assert list(point["predictors"]) == list(PREDICTORS)
        assert point["predictors"]["retained_mass"] == point["retained_mass"]
    (tests,) = report["evaluations"]
    assert tests["dataset"] == "heldout"
    assert [t["name"] for t in tests["predictors"]] == list(PREDICTORS)
    for test in tests["predictors"]:
        assert set(test) == {"name", "spearman", "ci", "p_value", "n", "groups"}
        assert test["n"] == 3
    table = lens("predict-vs-actual", setup["eval"], setup["bundle"], "--no-plot")
    assert table.returncode == 0, table.stderr
    assert "predictors vs loss increase" in table.stdout and "topk_intact" in table.stdout
    bad = lens("predict-vs-actual", setup["eval"], setup["bundle"], "--group", "heldout")
    assert_clean_error(bad, "expected LABEL=GROUP")
