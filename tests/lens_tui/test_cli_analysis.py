"""The analysis commands as a user runs them: a real subprocess, stdout JSON, stderr errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_bundle
from tests.core import reference as ref
from tests.lens_tui.cli_helpers import ROOT, assert_clean_error, lens


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    a = make_bundle(folder / "a.safetensors", n=10, layers=3, experts=8, seed=1)
    b = make_bundle(folder / "b.safetensors", n=7, layers=3, experts=8, seed=2, energy=False)
    return a, b


def _naive_p(path: Path):
    from core.formats.bundle import load_bundle

    bundle = load_bundle(path)
    return ref.signature(
        bundle.prob_sum.tolist(), bundle.token_count.tolist(), range(bundle.num_samples)
    )


def test_stats_json(bundles):
    a, _ = bundles
    out = lens("stats", a, "--json", "--tau", "0.1")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["bundle"]["path"] == str(a)
    assert doc["bundle"]["samples"] == 10 and doc["bundle"]["num_experts"] == 8
    p = _naive_p(a)
    assert [row["layer"] for row in doc["layers"]] == [0, 1, 2]
    for layer, row in enumerate(doc["layers"]):
        assert row["sparsity_pct"] == pytest.approx(ref.sparsity_pct(p[layer], 0.1))
        assert row["n_eff"] == pytest.approx(ref.n_eff(p[layer]))
    assert set(doc["mean"]) == {"sparsity_pct", "variance", "n_eff", "entropy_bits"}


def test_compare_json(bundles):
    a, b = bundles
    out = lens("compare", a, b, "--r", "3", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["r"] == 3 and doc["a"]["path"] == str(a) and doc["b"]["path"] == str(b)
    pa, pb = _naive_p(a), _naive_p(b)
    for layer, row in enumerate(doc["layers"]):
        assert set(row) >= {
            "layer",
            "a",
            "b",
            "js_divergence",
            "jaccard",
            "pearson_energy",
            "retained_mass_a_to_b",
            "retained_mass_b_to_a",
        }
        assert row["pearson_energy"] is None  # b has no energy
        assert row["jaccard"] == pytest.approx(
            ref.jaccard(ref.top_r(pa[layer], 3), ref.top_r(pb[layer], 3))
        )
        assert row["retained_mass_b_to_a"] == pytest.approx(
            ref.retained(ref.top_r(pb[layer], 3), pa[layer])
        )
    assert doc["mean"]["pearson_energy"] is None


def test_ablate_json(bundles):
    a, _ = bundles
    out = lens("ablate", a, "--r", "2", "--step", "3", "--max", "9", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["counts"] == [3, 6, 9]
    assert doc["stepwise"][0] is None and doc["to_final"][-1] == 1.0
    assert len(doc["layers"]["stepwise"]) == 3 and len(doc["layers"]["stepwise"][0]) == 3


def test_matrix_json_and_tables(bundles):
    a, _ = bundles
    out = lens("matrix", a.parent, "--r", "2", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["names"] == ["a", "b"]
    assert doc["jaccard"][0][0] == 1.0
    tables = lens("matrix", a.parent, "--r", "2")
    assert tables.returncode == 0 and "Jaccard" in tables.stdout


def test_human_tables(bundles):
    a, b = bundles
    out = lens("compare", a, b, "--r", "3")
    assert out.returncode == 0, out.stderr
    assert "verdict" in out.stdout and "mean" in out.stdout
    assert "converged" in lens("ablate", a, "--r", "2", "--step", "2").stdout


def test_errors_are_one_clean_line(bundles, tmp_path):
    a, b = bundles
    assert_clean_error(
        lens("stats", tmp_path / "missing.safetensors", "--json"),
        "missing.safetensors",
        "no such file",
    )
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01garbage" * 50)
    assert_clean_error(lens("compare", a, garbage, "--r", "2", "--json"), "garbage.safetensors")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(a.read_bytes()[:-100])
    assert_clean_error(lens("stats", truncated), "t.safetensors", "truncated")
    assert_clean_error(lens("compare", a, b, "--r", "0", "--json"), "r=0", "1..8")
    assert_clean_error(lens("compare", a, b, "--r", "9"), "r=9")
    other = make_bundle(tmp_path / "other.safetensors", experts=16)
    assert_clean_error(lens("compare", a, other, "--r", "2"), "other.safetensors", "E=16")
    assert_clean_error(lens("ablate", a, "--r", "2", "--step", "50"), "step 50")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert_clean_error(lens("stats", empty), "empty")


def test_zero_tokens_and_no_samples_are_clean_errors(tmp_path):
    from safetensors.numpy import save_file

    from core.formats.bundle import bundle_metadata

    meta = bundle_metadata(model="m", dataset="d", num_layers=1, num_experts=2, top_k=1)
    zero = tmp_path / "zero.safetensors"
    save_file(
        {
            "prob_sum": np.zeros((2, 1, 2), np.float32),
            "token_count": np.zeros(2, np.int64),
            "example_ids": np.arange(2),
        },
        str(zero),
        metadata=meta,
    )
    assert_clean_error(lens("stats", zero), "zero.safetensors", "zero tokens")
    none = tmp_path / "none.safetensors"
    save_file(
        {
            "prob_sum": np.zeros((0, 1, 2), np.float32),
            "token_count": np.zeros(0, np.int64),
            "example_ids": np.zeros(0, np.int64),
        },
        str(none),
        metadata=meta,
    )
    assert_clean_error(lens("stats", none), "none.safetensors", "no samples")


def test_version_and_help():
    out = lens("--version")
    assert out.returncode == 0 and "lens" in out.stdout
    helptext = lens("compare", "--help").stdout
    assert "Examples" in helptext and "--json" in helptext


def test_import_core_stays_light():
    code = (
        "import sys, core, core.formats.bundle, core.engine, core.ablation, core.matrix, lens_tui.cli;"
        "heavy = sorted(m for m in ('torch', 'transformers', 'textual') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_compare_evidence_names_the_validated_predictor(tmp_path):
    """--evidence: the study fixture's loss follows the energy share, so retained_energy is
    validated among the 8 masks calibrated on the held-out data; the verdict and JSON say so."""
    from core.engine import Profile
    from core.predictor_choice import relative_scores
    from tests.lens_tui.study_fixture import write_study

    paths = write_study(tmp_path / "study")
    a, b = paths["calib"], paths["heldout"]
    plain = lens("compare", a, b, "--r", "2", "--json")
    assert plain.returncode == 0, plain.stderr
    assert "predictor" not in json.loads(plain.stdout)  # the key comes with --evidence only
    done = lens("compare", a, b, "--r", "2", "--evidence", tmp_path / "study", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert {k: v for k, v in doc.items() if k != "predictor"} == json.loads(plain.stdout)
    predictor = doc["predictor"]
    assert predictor["name"] == predictor["used"] == "retained_energy" and predictor["validated"]
    assert [(e["dataset"], e["n"], e["spearman"]) for e in predictor["evidence"]] == [
        ("heldout", 8, -1.0)
    ]
    ab, ba = relative_scores("retained_energy", Profile.load(a), Profile.load(b), 2)
    assert (predictor["relative_a_to_b"], predictor["relative_b_to_a"]) == pytest.approx((ab, ba))
    text = lens("compare", a, b, "--r", "2", "--evidence", paths["eval"])
    assert text.returncode == 0, text.stderr  # the evaluation file alone: heldout is B itself
    words = " ".join(text.stdout.split())
    assert "by retained_energy" in words and "best-validated predictor among similar" in words
    without = " ".join(lens("compare", a, b, "--r", "2").stdout.split())
    assert "no predictor was validated among similar masks (no evaluation loaded)" in without
    assert_clean_error(
        lens("compare", a, b, "--r", "2", "--evidence", tmp_path / "nope.json"), "nope.json"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean_error(lens("compare", a, b, "--r", "2", "--evidence", empty), "no evaluation")
