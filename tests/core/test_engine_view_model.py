"""The typed accessors of ``Comparison`` that the app reads: against naive loops and the JSON."""

from __future__ import annotations

import pytest

from core import metrics as m
from core.engine import Profile, compare
from tests.conftest import make_bundle
from tests.core import reference as ref

UNIVARIATE_REF = {
    "sparsity_pct": ref.sparsity_pct,
    "variance": lambda p, tau: ref.variance(p),
    "n_eff": lambda p, tau: ref.n_eff(p),
    "entropy_bits": lambda p, tau: ref.entropy_bits(p),
}


@pytest.fixture
def pair(tmp_path):
    a = make_bundle(tmp_path / "a.safetensors", n=11, layers=5, experts=9, seed=3)
    b = make_bundle(tmp_path / "b.safetensors", n=7, layers=5, experts=9, seed=4, concentration=0.2)
    return Profile.load(a), Profile.load(b)


def _ref_signature(profile: Profile) -> list[list[float]]:
    bundle = profile.bundle
    return ref.signature(
        bundle.prob_sum.tolist(), bundle.token_count.tolist(), range(bundle.num_samples)
    )


@pytest.mark.parametrize(("r", "tau"), [(1, 0.01), (4, 0.05)])
def test_series_and_means_match_naive_loops(pair, r, tau):
    a, b = pair
    comparison = compare(a, b, r, tau)
    pa, pb = _ref_signature(a), _ref_signature(b)
    assert comparison.num_layers == 5
    expected = {
        "jaccard": [ref.jaccard(ref.top_r(x, r), ref.top_r(y, r)) for x, y in zip(pa, pb)],
        "js_divergence": [ref.js_bits(x, y) for x, y in zip(pa, pb)],
        "retained_mass_a_to_b": [ref.retained(ref.top_r(x, r), y) for x, y in zip(pa, pb)],
        "retained_mass_b_to_a": [ref.retained(ref.top_r(y, r), x) for x, y in zip(pa, pb)],
    }
    for key, values in expected.items():
        got = comparison.series(key)
        assert all(type(v) is float for v in got), key  # plain floats, as in the JSON
        assert got == pytest.approx(values, abs=1e-12), key
    for side, p in (("a", pa), ("b", pb)):
        means = comparison.univariate_mean(side)
        for key, naive in UNIVARIATE_REF.items():
            per_layer = [naive(row, tau) for row in p]
            assert comparison.series(key, side) == pytest.approx(per_layer, rel=1e-9), key
            assert means[key] == pytest.approx(sum(per_layer) / len(per_layer), rel=1e-9), key


def test_series_hold_exactly_what_the_json_prints(pair):
    a, b = pair
    comparison = compare(a, b, 3, 0.02)
    doc = compare(a, b, 3, 0.02).to_json()
    for key in m.BIVARIATE_KEYS:
        assert comparison.series(key) == [row[key] for row in doc["layers"]]
    for side in ("a", "b"):
        assert comparison.univariate_mean(side) == doc["univariate_mean"][side]
        for key in m.UNIVARIATE_KEYS:
            assert comparison.series(key, side) == [row[side][key] for row in doc["layers"]]


def test_a_metric_without_data_is_none_per_layer(tmp_path):
    a = Profile.load(make_bundle(tmp_path / "a.safetensors", layers=3, seed=1))
    b = Profile.load(make_bundle(tmp_path / "b.safetensors", layers=3, seed=2, energy=False))
    comparison = compare(a, b, 2)
    assert comparison.series("pearson_energy") == [None, None, None]
    assert comparison.mean["pearson_energy"] is None


def test_values_are_the_arrays_behind_the_series_and_univariate_ones_stay_the_same(pair):
    """A view may keep what it made of a univariate array: it is one object at every r."""
    a, b = pair
    at_2, at_3 = compare(a, b, 2, 0.02), compare(a, b, 3, 0.02)
    for key in m.UNIVARIATE_KEYS:
        for side in ("a", "b"):
            assert at_2.values(key, side) is at_3.values(key, side)
            assert at_3.values(key, side).tolist() == pytest.approx(at_3.series(key, side))
        assert at_2.values(key, "a") is not compare(a, b, 2, 0.05).values(key, "a")  # new τ
    for key in m.BIVARIATE_KEYS:
        assert at_3.values(key).tolist() == pytest.approx(at_3.series(key))
