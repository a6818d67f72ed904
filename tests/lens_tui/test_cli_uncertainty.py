"""``--ci`` on stats and compare, ``ablate --shuffles``: JSON shape, reproducibility, errors."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from tests.conftest import make_bundle
from tests.lens_tui.cli_helpers import assert_clean_error, lens

BIVARIATE = {
    "js_divergence",
    "jaccard",
    "pearson_energy",
    "retained_mass_a_to_b",
    "retained_mass_b_to_a",
    "retained_mass_rel_a_to_b",
    "retained_mass_rel_b_to_a",
}
UNIVARIATE = {"sparsity_pct", "variance", "n_eff", "entropy_bits"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    a = make_bundle(folder / "a.safetensors", n=30, layers=3, experts=8, seed=1)
    b = make_bundle(folder / "b.safetensors", n=20, layers=3, experts=8, seed=2, energy=False)
    return a, b


def _is_interval(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and value[0] <= value[1]


def test_compare_ci_json_has_the_issue_s_blocks_and_keeps_everything_else(bundles):
    a, b = bundles
    plain = json.loads(lens("compare", a, b, "--r", "3", "--json").stdout)
    out = lens("compare", a, b, "--r", "3", "--ci", "--replicates", "50", "--seed", "4", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {k: v for k, v in doc.items() if k not in ("ci", "difference")} == plain
    ci = doc["ci"]
    assert (ci["level"], ci["replicates"], ci["seed"]) == (0.95, 50, 4)
    assert set(ci["mean"]) == BIVARIATE
    assert ci["mean"]["pearson_energy"] is None  # B has no energy
    assert all(_is_interval(v) for k, v in ci["mean"].items() if k != "pearson_energy")
    assert set(ci["univariate_mean"]) == {"a", "b"}
    assert set(ci["univariate_mean"]["a"]) == UNIVARIATE
    assert len(ci["layers"]) == 3 and all(set(row) == BIVARIATE for row in ci["layers"])
    lo, hi = ci["mean"]["retained_mass_a_to_b"]
    assert 0.0 <= lo <= hi <= 1.0
    diff = doc["difference"]
    assert diff["test"] == "permutation" and diff["permutations"] == 50 and diff["seed"] == 4
    for key in ("js_divergence_p", "jaccard_p"):
        assert 1 / 51 <= diff[key] <= 1.0
    assert set(diff["noise_floor"]) == {"js_divergence", "jaccard"}
    median, p95 = diff["noise_floor"]["js_divergence"]
    assert 0 <= median <= p95
    median, p5 = diff["noise_floor"]["jaccard"]
    assert p5 <= median <= 1


def test_compare_without_ci_gains_only_the_relative_keys(bundles):
    a, b = bundles
    doc = json.loads(lens("compare", a, b, "--r", "2", "--json").stdout)
    assert "ci" not in doc and "difference" not in doc
    assert {"retained_mass_rel_a_to_b", "retained_mass_rel_b_to_a"} <= set(doc["mean"])
    for row in doc["layers"]:
        assert 0.0 <= row["retained_mass_rel_a_to_b"] <= 1.0


def test_same_seed_same_output_other_seed_other_intervals(bundles):
    a, _ = bundles
    first = lens("stats", a, "--ci", "--replicates", "30", "--seed", "1", "--json").stdout
    again = lens("stats", a, "--ci", "--replicates", "30", "--seed", "1", "--json").stdout
    other = lens("stats", a, "--ci", "--replicates", "30", "--seed", "2", "--json").stdout
    assert first == again and first != other
    ci = json.loads(first)["ci"]
    assert set(ci["mean"]) == UNIVARIATE and len(ci["layers"]) == 3
    assert all(_is_interval(v) for v in ci["mean"].values())


def test_tables_show_intervals_and_the_test(bundles):
    a, b = bundles
    out = lens("compare", a, b, "--r", "3", "--ci", "--replicates", "20")
    assert out.returncode == 0, out.stderr
    assert "95% bootstrap intervals over 20 replicates" in out.stdout
    assert "permutation test (20 random splits" in out.stdout
    assert "resampling noise" in out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--level", "1.2"], "--level must be between 0 and 1"),
        (["--level", "0"], "--level must be between 0 and 1"),
        (["--replicates", "1"], "--replicates must be at least 2"),
    ],
)
def test_bad_level_or_replicates_is_one_clean_line(bundles, args, needle):
    a, b = bundles
    assert_clean_error(lens("compare", a, b, "--r", "3", "--ci", *args), needle)
    assert_clean_error(lens("stats", a, "--ci", *args), needle)


def test_ablate_shuffles_adds_a_block_and_keeps_the_curve(bundles):
    a, _ = bundles
    plain = json.loads(lens("ablate", a, "--r", "3", "--step", "5", "--json").stdout)
    out = lens("ablate", a, "--r", "3", "--step", "5", "--shuffles", "6", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    spread = doc.pop("shuffled")
    assert doc == plain
    assert spread["shuffles"] == 6 and len(spread["converged_at"]) == 6
    found = sorted(c for c in spread["converged_at"] if c is not None)
    assert spread["not_converged"] == 6 - len(found)
    if found:
        assert spread["converged_at_range"][0] == found[0]
    beyond = [math.inf if c is None else c for c in spread["converged_at"]]
    median = statistics.median(beyond)
    assert spread["converged_at_median"] == (None if math.isinf(median) else median)
    band = spread["to_final_band"]
    assert len(band["median"]) == len(plain["counts"])
    assert all(lo <= mid <= hi for lo, mid, hi in zip(band["min"], band["median"], band["max"]))
    assert band["min"][-1] == band["max"][-1] == 1.0  # the last count is the reference itself
    assert_clean_error(lens("ablate", a, "--r", "3", "--shuffles", "0"), "--shuffles")
