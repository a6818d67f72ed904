"""lens samples and lens design as a user runs them (real subprocesses)."""

from __future__ import annotations

import json

import pytest

from core.formats.bundle import load_bundle
from core.formats.mask import read_mask
from core.samples import analyse
from tests.conftest import make_bundle
from tests.lens_tui.cli_helpers import assert_clean_error, lens

S = "sample_stats"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    bundle = make_bundle(folder / "wiki.safetensors", n=12, layers=3, experts=8, seed=4)
    lines = [json.dumps({"text": f"sample number {i}\nsecond line"}) for i in range(12)]
    text = "\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n"  # a blank line inside
    jsonl = folder / "wiki.jsonl"
    jsonl.write_text(text)
    return folder, bundle, jsonl


def test_samples_json_lists_every_sample_in_bundle_order(data):
    _, bundle, _ = data
    out = lens("samples", bundle, "--r", "3", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    expected = analyse(load_bundle(bundle), 3).to_json()
    assert doc["samples"] == expected["samples"] and doc["r"] == 3
    assert [row["index"] for row in doc["samples"]] == list(range(12))


def test_samples_table_shows_text_from_the_data_file(data):
    _, bundle, jsonl = data
    out = lens("samples", bundle, "--r", "3", "--data", jsonl, "--sort", "index", "--limit", "6")
    assert out.returncode == 0, out.stderr
    for i in range(6):
        assert f"sample number {i}" in out.stdout
    assert "sample number 6" not in out.stdout and "second line" not in out.stdout


def test_export_kept_drops_the_largest_divergences(data, tmp_path):
    _, bundle, jsonl = data
    kept = tmp_path / "kept.jsonl"
    out = lens(
        "samples",
        bundle,
        "--r",
        "3",
        "--data",
        jsonl,
        "--export-kept",
        kept,
        "--drop-outliers",
        "2",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["samples"]
    worst = sorted(rows, key=lambda row: (-row["js_divergence_mean"], row["index"]))[:2]
    dropped = {row["example_id"] for row in worst}
    original = jsonl.read_text().splitlines(keepends=True)
    records = [line for line in original if line.strip()]
    expected = "".join(
        line for line in original if not line.strip() or records.index(line) not in dropped
    )
    assert kept.read_text() == expected
    assert "2 flagged samples left out" in out.stderr


def test_samples_errors_are_one_line(data):
    _, bundle, jsonl = data
    assert_clean_error(lens("samples", bundle, "--r", "3", "--export-kept", "x.jsonl"), "--data")
    assert_clean_error(
        lens(
            "samples",
            bundle,
            "--r",
            "3",
            "--data",
            jsonl,
            "--export-kept",
            jsonl,
            "--max-js",
            "0.1",
        ),
        "is an input",
    )
    assert_clean_error(lens("samples", bundle, "--r", "99"), "outside")


def test_design_on_the_sample_bundles(tmp_path):
    names = ["wiki_en", "code_python", "dialogue_zh"]
    mask = tmp_path / "m.json"
    out = lens(
        "design",
        "--candidates",
        *(f"{S}/{n}.safetensors" for n in (*names, "mixed")),
        "--targets",
        *(f"{S}/{n}.safetensors" for n in names),
        "--r",
        "8",
        "--sequences",
        "64",
        "--mask-out",
        mask,
        "--json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["sequences"] == 64 and list(doc["design"]["per_target"]) == names
    assert all(doc["design"]["value"] >= b["value"] for b in doc["baselines"].values())
    written = read_mask(mask)
    assert written.kept_per_layer == [8] * 4
    assert written.extra["design"]["value"] == doc["selection"]["value"]


def test_design_writes_a_calibration_file(data, tmp_path):
    folder, bundle, jsonl = data
    other = make_bundle(folder / "other.safetensors", n=5, layers=3, experts=8, seed=9)
    txt = tmp_path / "other.txt"
    txt.write_text("\n".join(f"other {i}" for i in range(5)) + "\n")
    calib = tmp_path / "calib.jsonl"
    out = lens(
        "design", "--candidates", bundle, other, "--targets", other, bundle,
        "--r", "3", "--sequences", "6", "--data", jsonl, txt, "--out", calib, "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    records = [json.loads(line) for line in calib.read_text().splitlines()]
    assert len(records) == 6
    for record in records:
        assert record["example_id"] in doc["selection"]["example_ids"][record["dataset"]]
        expected = "sample number" if record["dataset"] == "wiki" else "other"
        assert record["text"].startswith(f"{expected} {record['example_id']}")


def test_design_errors_are_one_line(data, tmp_path):
    _, bundle, jsonl = data
    assert_clean_error(
        lens(
            "design",
            "--candidates",
            bundle,
            "--targets",
            bundle,
            "--r",
            "3",
            "--out",
            tmp_path / "c.jsonl",
        ),
        "one data file per candidate",
    )
    assert_clean_error(
        lens(
            "design", "--candidates", bundle, "--targets", bundle, "--r", "3", "--mask-out", bundle
        ),
        "is an input",
    )


def test_help_teaches_with_examples():
    for command in ("samples", "design"):
        out = lens(command, "--help")
        assert out.returncode == 0 and "Examples:" in out.stdout


def test_table_output_runs(tmp_path):
    out = lens(
        "design", "--candidates", f"{S}/wiki_en.safetensors", f"{S}/code_python.safetensors",
        "--targets", f"{S}/wiki_en.safetensors", f"{S}/code_python.safetensors", "--r", "8",
        "--sequences", "32",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "uniform mix" in out.stdout and "design mix:" in out.stdout
