"""lens mask, lens masks-compare and lens prune as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.formats.bundle import load_bundle
from tests.conftest import make_bundle
from tests.core.masks.test_make import full_stats, naive_score, naive_top
from tests.lens_tui.test_cli_analysis import lens


def assert_one_line_error(out, *fragments):
    assert out.returncode == 1, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    a = make_bundle(
        folder / "a.safetensors", n=6, layers=3, experts=8, seed=1, extra=full_stats(6, 1)
    )
    b = make_bundle(
        folder / "b.safetensors", n=5, layers=3, experts=8, seed=2, extra=full_stats(5, 2)
    )
    bare = make_bundle(folder / "bare.safetensors", n=3, layers=3, experts=8, seed=3)
    return a, b, bare


def test_mask_writes_the_spec_file_and_reports_json(bundles, tmp_path):
    a, b, _ = bundles
    out = lens(
        "mask", a, b, "--criterion", "reap", "--r", "3", "--out", tmp_path / "m.json", "--json"
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["format"] == "expert-calibration-lens/mask" and doc["criterion"] == "reap"
    assert doc["sources"] == [str(a), str(b)] and doc["num_experts"] == 8
    loaded = [load_bundle(a), load_bundle(b)]
    for layer in range(3):
        scores = [naive_score("reap", loaded, layer, e) for e in range(8)]
        assert doc["layers"][layer] == naive_top(scores, 3)
    assert report["kept_per_layer"] == [3, 3, 3] and set(report["retained_mass"]) == {
        str(a),
        str(b),
    }


def test_mask_keeps_hash_routed_layers_whole_and_says_so(tmp_path):
    from tests.core.masks.test_make import hash_routed_bundle

    bundle = hash_routed_bundle(tmp_path / "v4.safetensors", [0, 2])
    out = lens("mask", bundle.path, "--r", "3", "--out", tmp_path / "m.json")
    assert out.returncode == 0, out.stderr
    assert "MoE layers 0, 2 are hash-routed (a token-id table picks the experts): kept whole" in (
        out.stdout
    )
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [len(ids) for ids in doc["layers"]] == [8, 3, 8]
    assert doc["hash_routed_layers"] == [0, 2]
    out = lens("mask", bundle.path, "--r", "3", "--out", tmp_path / "j.json", "--json")
    assert json.loads(out.stdout)["hash_routed_layers"] == [0, 2]


def test_mask_with_a_global_budget(bundles, tmp_path):
    a, _, _ = bundles
    out = lens("mask", a, "--budget", "13", "--out", tmp_path / "g.json", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "g.json").read_text())
    assert sum(len(ids) for ids in doc["layers"]) == 13
    assert doc["budget"] == {"kind": "global", "total": 13, "min_per_layer": 2}


def test_mask_missing_statistic_is_one_clear_line(bundles, tmp_path):
    _, _, bare = bundles
    out = lens("mask", bare, "--criterion", "reap", "--r", "2", "--out", tmp_path / "x.json")
    assert_one_line_error(out, str(bare), "criterion 'reap' needs 'reap_sum'", "lens collect")
    assert not (tmp_path / "x.json").exists()


def test_masks_compare_json_from_files_and_criteria(bundles, tmp_path):
    a, b, _ = bundles
    m1, m2 = tmp_path / "one.json", tmp_path / "two.json"
    for path, layers in ((m1, [[0, 1], [2, 3], [4, 5]]), (m2, [[0, 2], [2, 3], [6, 7]])):
        path.write_text(
            json.dumps(
                {
                    "format": "expert-calibration-lens/mask",
                    "model": "tiny-moe",
                    "num_experts": 8,
                    "criterion": "hand",
                    "sources": [],
                    "layers": layers,
                }
            )
        )
    out = lens("masks-compare", m1, m2, a, b, "--criteria", "mass,coverage", "--r", "2", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    names = [m["name"] for m in doc["masks"]]
    assert names == ["one", "two", "mass:a", "mass:b", "coverage:a+b"]
    # one vs two: layer 0 1/3, layer 1 1, layer 2 0
    assert doc["jaccard"]["layers"][0][0][1] == pytest.approx(1 / 3)
    assert doc["jaccard"]["mean"][0][1] == pytest.approx((1 / 3 + 1 + 0) / 3)
    bundle = load_bundle(a)
    p = np.asarray(bundle.prob_sum, dtype=np.float64).sum(0) / bundle.num_tokens
    expected = np.mean([p[0, [0, 1]].sum(), p[1, [2, 3]].sum(), p[2, [4, 5]].sum()])
    assert doc["retained_mass"]["mean"][0][0] == pytest.approx(expected)

    table = lens("masks-compare", m1, m2, a)
    assert table.returncode == 0 and "routing mass kept" in table.stdout and "one" in table.stdout


def test_masks_compare_refuses_r_without_criteria(bundles):
    a, _, _ = bundles
    assert_one_line_error(lens("masks-compare", a, "--r", "2"), "--r and --budget only apply")


@pytest.fixture(scope="module")
def tiny_gpt_oss(tmp_path_factory):
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_model

    return build_tiny_model("gpt_oss", tmp_path_factory.mktemp("m") / "gpt-oss-tiny")


def _write_mask(path: Path, model: Path, layers, experts=8):
    path.write_text(
        json.dumps(
            {
                "format": "expert-calibration-lens/mask",
                "model": str(model),
                "num_experts": experts,
                "criterion": "hand",
                "sources": [],
                "layers": layers,
            }
        )
    )
    return path


def test_aimer_mask_then_prune_end_to_end(tiny_gpt_oss, tmp_path):
    mask = tmp_path / "aimer.json"
    out = lens("mask", "--criterion", "aimer", "--model", tiny_gpt_oss, "--r", "3", "--out", mask)
    assert out.returncode == 0, out.stderr
    pruned = tmp_path / "pruned"
    out = lens("prune", "--model", tiny_gpt_oss, "--mask", mask, "--out", pruned, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["num_experts_before"] == 8 and report["num_experts_after"] == 3
    assert json.loads((pruned / "config.json").read_text())["num_local_experts"] == 3
    assert (pruned / "tokenizer.json").exists()


def test_masks_compare_builds_the_aimer_mask_from_the_checkpoint(tiny_gpt_oss, tmp_path):
    direct = tmp_path / "aimer.json"
    assert (
        lens("mask", "-c", "aimer", "--model", tiny_gpt_oss, "--r", "3", "-o", direct).returncode
        == 0
    )
    out = lens(
        "masks-compare",
        direct,
        "--criteria",
        "aimer",
        "--model",
        tiny_gpt_oss,
        "--r",
        "3",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [m["criterion"] for m in doc["masks"]] == ["aimer", "aimer"]
    assert doc["jaccard"]["mean"][0][1] == 1.0  # the same mask both ways
    assert doc["masks"][1]["model"] == str(tiny_gpt_oss)


def test_aimer_without_model_is_one_line(tmp_path):
    out = lens("mask", "-c", "aimer", "--r", "3", "-o", tmp_path / "m.json")
    assert_one_line_error(out, "criterion 'aimer' reads the checkpoint's weights: pass --model")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "layers,experts,fragment",
    [
        ([[0, 8], [1, 2]], 8, "layer 0 names expert 8, outside 0..7"),
        ([[0, 1], [1, 1]], 8, "layer 1 lists expert 1 more than once"),
        ([[0, 1], [1, 2], [3, 4]], 8, "mask has 3 layers but"),
        ([[0, 1], [3]], 8, "layer 1 keeps 1 experts, fewer than the model's top-k of 2"),
        ([[0, 1], [1, 2]], 16, "mask is for 16 experts per layer but"),
    ],
)
def test_prune_refuses_bad_masks_with_one_line(tiny_gpt_oss, tmp_path, layers, experts, fragment):
    mask = _write_mask(tmp_path / "bad.json", tiny_gpt_oss, layers, experts)
    out = lens("prune", "--model", tiny_gpt_oss, "--mask", mask, "--out", tmp_path / "o")
    assert_one_line_error(out, str(mask), fragment)
    assert not (tmp_path / "o").exists()


def test_prune_refuses_another_models_mask(tiny_gpt_oss, tmp_path):
    mask = _write_mask(tmp_path / "other.json", Path("org/another-model"), [[0, 1], [2, 3]])
    out = lens("prune", "--model", tiny_gpt_oss, "--mask", mask, "--out", tmp_path / "o")
    assert_one_line_error(out, "mask is for model 'org/another-model'", "--allow-other-model")
    out = lens(
        "prune",
        "--model",
        tiny_gpt_oss,
        "--mask",
        mask,
        "--out",
        tmp_path / "o",
        "--allow-other-model",
    )
    assert out.returncode == 0, out.stderr


def test_help_has_examples():
    for command in ("mask", "masks-compare", "prune"):
        text = lens(command, "--help").stdout
        assert "Examples" in text, command


def test_mask_formats_for_serving_engines(tiny_gpt_oss, tmp_path):
    """plain: kept ids per MoE layer; vllm: dropped ids per decoder layer; same experts as json."""
    args = ("mask", "-c", "aimer", "--model", tiny_gpt_oss, "--r", "3")
    assert lens(*args, "-o", tmp_path / "m.json").returncode == 0
    kept = json.loads((tmp_path / "m.json").read_text())["layers"]
    out = lens(*args, "--format", "plain", "-o", tmp_path / "m.txt")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "m.txt").read_text().splitlines()
    assert [[int(e) for e in line.split()] for line in lines] == kept
    out = lens(*args, "--format", "vllm", "-o", tmp_path / "v.json")
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "v.json").read_text())
    assert doc == {
        "approximate_experts": {
            str(layer): sorted(set(range(8)) - set(ids)) for layer, ids in enumerate(kept)
        }
    }
    bad = lens(*args, "--format", "plain", "-o", tmp_path / "p.json")
    assert_one_line_error(bad, "must end in .txt")


def test_vllm_format_needs_the_model_for_decoder_layer_numbers(bundles, tmp_path):
    a, _, _ = bundles
    out = lens("mask", a, "--r", "3", "--format", "vllm", "-o", tmp_path / "v.json")
    assert_one_line_error(out, "--format vllm needs --model")
