"""The metric engine against naive per-expert loops and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import metrics as m
from core.engine import Profile, compare, stats
from core.errors import LensError
from tests.conftest import make_bundle
from tests.core import reference as ref


@pytest.fixture
def pair(tmp_path):
    a = Profile.load(make_bundle(tmp_path / "a.safetensors", n=15, layers=4, experts=10, seed=1))
    b = Profile.load(
        make_bundle(
            tmp_path / "b.safetensors", n=9, layers=4, experts=10, seed=2, concentration=0.2
        )
    )
    return a, b


def _ref_signature(profile: Profile, samples=None):
    bundle = profile.bundle
    samples = range(bundle.num_samples) if samples is None else samples
    return ref.signature(bundle.prob_sum.tolist(), bundle.token_count.tolist(), list(samples))


def test_signature_matches_naive_sum(pair):
    a, _ = pair
    expected = _ref_signature(a)
    np.testing.assert_allclose(a.prob, expected, rtol=1e-12, atol=0)
    # a subset too
    subset = [0, 3, 4, 11]
    got = m.signature(a.bundle.prob_sum, a.bundle.token_count, np.array(subset))
    np.testing.assert_allclose(got, _ref_signature(a, subset), rtol=1e-12)


@pytest.mark.parametrize("tau", [0.01, 0.05, 0.2])
def test_univariate_matches_naive(pair, tau):
    a, _ = pair
    report = stats(a, tau).to_json()
    p = _ref_signature(a)
    for layer, row in enumerate(report["layers"]):
        assert row["layer"] == layer
        assert row["sparsity_pct"] == pytest.approx(ref.sparsity_pct(p[layer], tau))
        assert row["variance"] == pytest.approx(ref.variance(p[layer]), rel=1e-9)
        assert row["n_eff"] == pytest.approx(ref.n_eff(p[layer]), rel=1e-9)
        assert row["entropy_bits"] == pytest.approx(ref.entropy_bits(p[layer]), rel=1e-9)
    for key in m.UNIVARIATE_KEYS:
        naive_mean = sum(r[key] for r in report["layers"]) / len(report["layers"])
        assert report["mean"][key] == pytest.approx(naive_mean)


def test_univariate_hand_worked():
    # Uniform over 4 experts: variance 0, N_eff 4, entropy 2 bits, nothing below 0.1.
    p = np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]])
    u = m.univariate(p, tau=0.1)
    assert u["sparsity_pct"].tolist() == [0.0, 75.0]
    assert u["variance"][0] == 0.0
    assert u["variance"][1] == pytest.approx(0.1875)  # mean .25: (.75² + 3·.25²)/4
    assert u["n_eff"][0] == pytest.approx(4.0)
    assert u["n_eff"][1] == pytest.approx(1.0)
    assert u["entropy_bits"][0] == pytest.approx(2.0)
    assert u["entropy_bits"][1] == pytest.approx(0.0, abs=1e-9)  # zero-mass experts add nothing


@pytest.mark.parametrize("r", [1, 3, 7, 10])
def test_bivariate_matches_naive(pair, r):
    a, b = pair
    doc = compare(a, b, r).to_json()
    pa, pb = _ref_signature(a), _ref_signature(b)
    ea = ref.signature(
        a.bundle.get("energy_sum").tolist(), a.bundle.token_count.tolist(), range(15)
    )
    eb = ref.signature(b.bundle.get("energy_sum").tolist(), b.bundle.token_count.tolist(), range(9))
    assert doc["r"] == r
    for layer, row in enumerate(doc["layers"]):
        ma, mb = ref.top_r(pa[layer], r), ref.top_r(pb[layer], r)
        assert row["jaccard"] == pytest.approx(ref.jaccard(ma, mb))
        assert row["js_divergence"] == pytest.approx(ref.js_bits(pa[layer], pb[layer]), abs=1e-12)
        assert row["pearson_energy"] == pytest.approx(ref.pearson(ea[layer], eb[layer]), abs=1e-9)
        assert row["retained_mass_a_to_b"] == pytest.approx(ref.retained(ma, pb[layer]))
        assert row["retained_mass_b_to_a"] == pytest.approx(ref.retained(mb, pa[layer]))
        assert row["a"]["n_eff"] == pytest.approx(ref.n_eff(pa[layer]))
        assert row["b"]["entropy_bits"] == pytest.approx(ref.entropy_bits(pb[layer]))
    for key in m.BIVARIATE_KEYS:
        values = [row[key] for row in doc["layers"]]
        assert doc["mean"][key] == pytest.approx(sum(values) / len(values))


def test_r_equal_to_e_keeps_everything(pair):
    a, b = pair
    doc = compare(a, b, 10).to_json()
    for row in doc["layers"]:
        assert row["jaccard"] == 1.0
        assert row["retained_mass_a_to_b"] == pytest.approx(1.0)


def test_mask_ties_go_to_lower_index():
    p = np.array([[0.2, 0.3, 0.2, 0.3, 0.0], [0.2, 0.2, 0.2, 0.2, 0.2]])
    mask = m.proxy_mask(p, 3)
    assert m.kept_experts(mask) == [[0, 1, 3], [0, 1, 2]]
    assert m.kept_experts(m.proxy_mask(p, 1)) == [[1], [0]]


def test_jaccard_hand_worked():
    a = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=bool)
    b = np.array([[0, 1, 1, 0], [1, 0, 1, 0]], dtype=bool)
    assert m.jaccard(a, b).tolist() == [pytest.approx(1 / 3), 1.0]


def test_js_hand_worked_and_zero_mass():
    # Disjoint supports: JS = 1 bit exactly. Identical: 0. Zero-mass entries are 0·log 0 = 0.
    p = np.array([[0.5, 0.5, 0.0, 0.0], [0.1, 0.9, 0.0, 0.0]])
    q = np.array([[0.0, 0.0, 0.5, 0.5], [0.1, 0.9, 0.0, 0.0]])
    js = m.js_divergence(p, q)
    assert js[0] == pytest.approx(1.0)
    assert js[1] == pytest.approx(0.0, abs=1e-15)
    # p = (1, 0), q = (.5, .5): m = (.75, .25); JS = .5·log2(1/.75) + .5·(.5·log2(.5/.75) + .5·log2(.5/.25))
    expected = 0.5 * math.log2(1 / 0.75) + 0.5 * (
        0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    )
    assert m.js_divergence(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]))[0] == pytest.approx(
        expected
    )
    # unnormalised inputs are normalised first
    assert m.js_divergence(np.array([[2.0, 0.0]]), np.array([[3.0, 3.0]]))[0] == pytest.approx(
        expected
    )


def test_pearson_null_without_energy_or_constant(tmp_path):
    with_energy = Profile.load(make_bundle(tmp_path / "a.safetensors", seed=1))
    without = Profile.load(make_bundle(tmp_path / "b.safetensors", seed=2, energy=False))
    doc = compare(with_energy, without, 2).to_json()
    assert all(row["pearson_energy"] is None for row in doc["layers"])
    assert doc["mean"]["pearson_energy"] is None
    # constant energy in one layer: that layer is null, the mean skips it
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    y = np.array([[2.0, 4.0, 7.0], [1.0, 2.0, 3.0]])
    r = m.pearson(x, y)
    assert r[0] == pytest.approx(ref.pearson([1, 2, 3], [2, 4, 7]))
    assert math.isnan(r[1])
    assert m.layer_mean(r) == pytest.approx(r[0])


def test_zero_token_samples_do_not_count(tmp_path):
    # Sample 1 has zero tokens and zero sums: the signature must equal the one without it.
    prob_sum = np.array(
        [[[3.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0, 1.0]]], dtype=np.float32
    )
    path = make_bundle(
        tmp_path / "z.safetensors",
        layers=1,
        experts=4,
        energy=False,
        token_count=np.array([4, 0, 4]),
        prob_sum=prob_sum,
    )
    profile = Profile.load(path)
    np.testing.assert_allclose(profile.prob, [[4 / 8, 2 / 8, 1 / 8, 1 / 8]])
    assert profile.tokens == 8


def test_r_outside_range_is_refused(pair):
    a, b = pair
    for r in (0, 11, -1):
        with pytest.raises(LensError, match=r"outside 1\.\.10"):
            compare(a, b, r)


def test_different_shapes_are_refused(tmp_path):
    a = Profile.load(make_bundle(tmp_path / "a.safetensors", experts=8))
    b = Profile.load(make_bundle(tmp_path / "b.safetensors", experts=16))
    with pytest.raises(LensError, match="same model"):
        compare(a, b, 2)


def test_layer_mean_skips_nulls():
    assert m.layer_mean(np.array([np.nan, 1.0, 3.0])) == 2.0
    assert m.layer_mean(np.array([np.nan])) is None
    assert m.layer_mean(None) is None


def test_proxy_mask_without_sorting_equals_the_stable_sort_with_many_ties():
    """The partition fast path keeps exactly the stable sort's first r, ties to lower index."""
    rng = np.random.default_rng(12)
    p = rng.integers(0, 4, size=(50, 6, 9)).astype(np.float64)  # values 0..3: ties everywhere
    for r in range(1, 10):
        order = np.argsort(-p, axis=-1, kind="stable")[..., :r]
        expected = np.zeros(p.shape, dtype=bool)
        np.put_along_axis(expected, order, True, axis=-1)
        assert np.array_equal(m.proxy_mask(p, r), expected), r
        assert (m.proxy_mask(p, r).sum(axis=-1) == r).all()


def test_js_divergence_of_one_signature_against_a_stack_broadcasts():
    """``lens matrix`` compares one signature with all of them in one call: the result
    equals the pairwise divergences, computed one pair at a time."""
    rng = np.random.default_rng(3)
    stack = rng.dirichlet(np.ones(6), size=(5, 3))  # [5 bundles, 3 layers, 6 experts]
    at_once = m.js_divergence(stack[1][None], stack)
    one_by_one = np.stack([m.js_divergence(stack[1], other) for other in stack])
    assert at_once.shape == (5, 3)
    np.testing.assert_allclose(at_once, one_by_one, rtol=0, atol=1e-15)
