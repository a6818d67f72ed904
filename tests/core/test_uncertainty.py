"""Bootstrap intervals and the permutation test (core.uncertainty), checked statistically.

Synthetic calibration sets are drawn from *known* population signatures: each
sequence routes with its own Dirichlet-perturbed copy of the population
distribution π_l, weighted by a random token count independent of it, so the
population signature P_l is exactly π_l. The populations have a clear gap at
the top-r boundary (the proxy mask is stable), which is where a percentile
bootstrap of retained mass is expected to be valid. Expected values come from
the plain-Python reference loops in ``tests/core/reference.py``.

Kept small (L=2, E=8, 80 sequences per set) so 200 simulated draws of 200
replicates run in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core import metrics as m
from core import uncertainty as u
from core.engine import Profile, compare, verdict
from core.errors import LensError
from core.formats.bundle import Bundle
from tests.core import reference as ref

ROOT = Path(__file__).resolve().parents[2]
R = 3
#: Two layers; A's top 3 is {0, 1, 2} with a gap of 0.10 to the fourth expert.
POP_A = np.array(
    [
        [0.25, 0.20, 0.18, 0.08, 0.08, 0.07, 0.07, 0.07],
        [0.06, 0.30, 0.05, 0.22, 0.05, 0.17, 0.10, 0.05],
    ]
)
#: B swaps A's third and fourth expert (A's mask keeps 84 % and 75 % of B's best top 3).
POP_B = POP_A[:, [0, 1, 3, 2, 4, 5, 6, 7]]
N = 80
DRAWS = 200


def draw_profile(rng: np.random.Generator, pop: np.ndarray, n: int = N, name: str = "x") -> Profile:
    """n sequences whose routing depends on their length, so token weighting matters.

    Half the sequences are long (50–70 tokens) and route with Dirichlet(20·π);
    the others are short (10–30 tokens) and route with Dirichlet(20·π_short),
    π_short = 0.6 π + 0.4 / E (flatter). The population signature is therefore
    the token-weighted mix :func:`population_signature`, not the plain mean of
    the two (which an unweighted resampling would estimate).
    """
    long = rng.random(n) < 0.5
    tokens = np.where(long, rng.integers(50, 71, size=n), rng.integers(10, 31, size=n))
    flat = flatter(pop)
    per_sequence = np.empty((n, *pop.shape))
    for layer in range(pop.shape[0]):
        per_sequence[long, layer] = rng.dirichlet(20.0 * pop[layer], size=int(long.sum()))
        per_sequence[~long, layer] = rng.dirichlet(20.0 * flat[layer], size=int((~long).sum()))
    prob_sum = (per_sequence * tokens[:, None, None]).astype(np.float32)
    tensors = {
        "prob_sum": prob_sum,
        "token_count": tokens.astype(np.int64),
        "example_ids": np.arange(n, dtype=np.int64),
    }
    return Profile(Bundle(Path(f"{name}.safetensors"), {"model": "synthetic"}, tensors))


def flatter(pop: np.ndarray) -> np.ndarray:
    return 0.6 * pop + 0.4 / pop.shape[-1]


def population_signature(pop: np.ndarray) -> np.ndarray:
    """E[T p] / E[T] with E[T] = 60 (long) and 20 (short), half each: (60 π + 20 π_short) / 80."""
    return (60.0 * pop + 20.0 * flatter(pop)) / 80.0


def population_values(pop_a: np.ndarray, pop_b: np.ndarray) -> dict[str, float]:
    """Whole-model (mean over layers) population values, from the reference loops."""
    a, b = population_signature(pop_a).tolist(), population_signature(pop_b).tolist()
    kept = [ref.retained(ref.top_r(a[l], R), b[l]) for l in range(len(a))]
    best = [ref.retained(ref.top_r(b[l], R), b[l]) for l in range(len(a))]
    return {
        "retained_mass_a_to_b": sum(kept) / len(a),
        "retained_mass_rel_a_to_b": sum(k / x for k, x in zip(kept, best)) / len(a),
        "n_eff": sum(ref.n_eff(row) for row in a) / len(a),
        "entropy_bits": sum(ref.entropy_bits(row) for row in a) / len(a),
    }


# --------------------------------------------------------------------------- mechanics


def test_bootstrap_counts_draw_n_sequences_per_replicate_reproducibly():
    counts = u.bootstrap_counts(np.random.default_rng(5), 37, 50)
    assert counts.shape == (50, 37)
    assert (counts.sum(axis=1) == 37).all()
    assert (counts >= 0).all() and np.array_equal(counts, np.round(counts))
    again = u.bootstrap_counts(np.random.default_rng(5), 37, 50)
    assert np.array_equal(counts, again)
    # Each sequence is drawn once per replicate on average.
    assert counts.mean() == pytest.approx(1.0)


def test_replicate_signature_is_the_signature_of_the_resampled_sequences(monkeypatch):
    """P* from the weighted matmul equals the hand-loop signature of the explicit multiset."""
    rng = np.random.default_rng(3)
    profile = draw_profile(rng, POP_A, n=9)
    weights = u.bootstrap_counts(rng, 9, 4)
    monkeypatch.setattr(u, "CHUNK_BYTES", 4 * 9)  # one replicate per chunk: chunking is exercised
    rep = u.replicate_signatures(u.resampling_units(profile), weights, (2, 8))
    prob_sum = profile.bundle.prob_sum.tolist()
    tokens = profile.bundle.token_count.tolist()
    for row, counts in enumerate(weights.astype(int)):
        multiset = [i for i, c in enumerate(counts) for _ in range(c)]
        expected = ref.signature(prob_sum, tokens, multiset)
        np.testing.assert_allclose(rep.prob[row], expected, rtol=1e-5)


def test_bad_level_or_replicates_is_a_lens_error():
    profile = draw_profile(np.random.default_rng(0), POP_A, n=10)
    with pytest.raises(LensError, match="--level"):
        u.bootstrap_stats(profile, level=1.0)
    with pytest.raises(LensError, match="--replicates"):
        u.bootstrap_stats(profile, replicates=1)


def test_same_seed_same_intervals_other_seed_other_intervals():
    rng = np.random.default_rng(1)
    a, b = draw_profile(rng, POP_A), draw_profile(rng, POP_B)
    first = u.bootstrap_compare(a, b, R, replicates=50, seed=7).to_json()
    assert u.bootstrap_compare(a, b, R, replicates=50, seed=7).to_json() == first
    assert u.bootstrap_compare(a, b, R, replicates=50, seed=8).to_json() != first


# --------------------------------------------------------------------------- coverage


def test_95_percent_intervals_cover_the_population_value_90_to_99_percent_of_the_time():
    truth = population_values(POP_A, POP_B)
    assert 0.75 < truth["retained_mass_rel_a_to_b"] < 0.85  # a real, non-trivial target
    rng = np.random.default_rng(2024)
    covered = dict.fromkeys(truth, 0)
    for draw in range(DRAWS):
        a, b = draw_profile(rng, POP_A), draw_profile(rng, POP_B)
        ci = u.bootstrap_compare(a, b, R, replicates=200, level=0.95, seed=draw)
        intervals = {
            "retained_mass_a_to_b": ci.bivariate.mean["retained_mass_a_to_b"],
            "retained_mass_rel_a_to_b": ci.bivariate.mean["retained_mass_rel_a_to_b"],
            "n_eff": ci.univariate_a.mean["n_eff"],
            "entropy_bits": ci.univariate_a.mean["entropy_bits"],
        }
        for key, (lo, hi) in intervals.items():
            covered[key] += int(lo <= truth[key] <= hi)
    rates = {key: hits / DRAWS for key, hits in covered.items()}
    for key, rate in rates.items():
        assert 0.90 <= rate <= 0.99, (key, rates)


# --------------------------------------------------------------------------- permutation test


def test_permutation_p_values_are_rarely_small_when_both_sets_share_a_population():
    rng = np.random.default_rng(99)
    p_js, p_jac = [], []
    for draw in range(DRAWS):
        a, b = draw_profile(rng, POP_A, name="a"), draw_profile(rng, POP_A, n=60, name="b")
        diff = u.permutation_test(a, b, R, permutations=200, seed=draw)
        p_js.append(diff.js_divergence_p)
        p_jac.append(diff.jaccard_p)
    p_js, p_jac = np.array(p_js), np.array(p_jac)
    assert np.mean(p_js < 0.05) < 0.10
    assert np.mean(p_jac < 0.05) < 0.10
    # Roughly uniform: about half below one half, none outside (0, 1].
    assert 0.35 <= np.mean(p_js < 0.5) <= 0.65
    assert ((p_js > 0) & (p_js <= 1)).all()


def test_permutation_p_value_is_small_for_a_clearly_shifted_pair():
    """A and B (POP_B: two experts swap their mass) differ visibly: no random split is as far apart.

    Only JS is asked here: pooling POP_A and POP_B ties experts 2 and 3, so the
    shuffled masks differ about as often as the observed ones (Jaccard is a
    coarse statistic; see the next test for a shift that moves the masks)."""
    rng = np.random.default_rng(7)
    for draw in range(5):
        a, b = draw_profile(rng, POP_A), draw_profile(rng, POP_B)
        diff = u.permutation_test(a, b, R, permutations=200, seed=draw)
        assert diff.js_divergence_p < 0.01
        assert diff.js_divergence_p == pytest.approx(1 / 201)  # no split as extreme
        floor = diff.to_json()["noise_floor"]
        js = compare(a, b, R).mean["js_divergence"]
        assert floor["js_divergence"][0] <= floor["js_divergence"][1] < js


def test_permutation_jaccard_p_value_is_small_when_the_top_experts_move():
    rng = np.random.default_rng(8)
    moved = POP_A[:, [5, 6, 7, 3, 4, 0, 1, 2]]  # A's top three now sit on experts 5, 6, 7
    a, b = draw_profile(rng, POP_A), draw_profile(rng, moved)
    diff = u.permutation_test(a, b, R, permutations=200, seed=0)
    assert diff.jaccard_p < 0.01 and diff.js_divergence_p < 0.01
    floor = diff.to_json()["noise_floor"]["jaccard"]
    assert floor[1] <= floor[0]  # 5th percentile below the median
    assert compare(a, b, R).mean["jaccard"] < floor[1]


def test_p_value_counts_the_splits_at_least_as_extreme_with_the_plus_one_correction():
    """Recount p by hand from the null distribution the test returns."""
    rng = np.random.default_rng(11)
    a, b = draw_profile(rng, POP_A, n=30), draw_profile(rng, POP_A, n=25)
    diff = u.permutation_test(a, b, R, permutations=99, seed=3)
    observed = compare(a, b, R).mean["js_divergence"]
    extreme = sum(1 for v in diff.null_js if v >= observed - 1e-9)
    assert diff.js_divergence_p == pytest.approx((1 + extreme) / 100)
    assert len(diff.null_js) == 99


# --------------------------------------------------------------------------- self-comparison


@pytest.mark.parametrize("name", ["news_en", "dialogue_en"])
def test_self_comparison_is_exactly_one_and_safe_at_every_r(name):
    profile = Profile.load(ROOT / "sample_stats" / f"{name}.safetensors")
    for r in range(1, profile.num_experts + 1):
        result = compare(profile, profile, r)
        rel = result.layers["retained_mass_rel_a_to_b"]
        assert (rel == 1.0).all() and (result.layers["retained_mass_rel_b_to_a"] == 1.0).all()
        assert result.mean["retained_mass_rel_a_to_b"] == 1.0
        text = verdict(result)
        assert "safe surrogate" in text and "not a safe" not in text, (r, text)


def test_self_comparison_with_ties_is_exactly_one():
    """A flat layer (all experts tied) still gives exactly 1.0: ties break the same way."""
    flat = np.full((1, 2, 8), 5.0, dtype=np.float32)
    tensors = {"prob_sum": flat, "token_count": np.array([40]), "example_ids": np.array([0])}
    profile = Profile(Bundle(Path("flat.safetensors"), {}, tensors))
    for r in range(1, 9):
        assert (compare(profile, profile, r).layers["retained_mass_rel_a_to_b"] == 1.0).all()


def test_verdict_reports_resampling_noise_in_words():
    rng = np.random.default_rng(7)
    a, b = draw_profile(rng, POP_A, name="news_en"), draw_profile(rng, POP_A, name="wiki_en")
    diff = u.permutation_test(a, b, R, permutations=200, seed=0)
    assert diff.js_divergence_p > 0.05  # one population; this draw is not among the 5 % unlucky
    text = verdict(compare(a, b, R), diff)
    js = compare(a, b, R).mean["js_divergence"]
    assert text.startswith(f"news_en and wiki_en route alike: their difference (JS {js:.3g})")
    assert f"is within resampling noise (p = {diff.js_divergence_p:.2g})" in text
    shifted = draw_profile(rng, POP_B, name="code")
    diff = u.permutation_test(a, shifted, R, permutations=200, seed=0)
    text = verdict(compare(a, shifted, R), diff)
    assert text.startswith("news_en and code route differently: their difference (JS ")
    assert "beyond resampling noise (p = 0.005" in text


def test_relative_retained_mass_against_a_hand_computation():
    rng = np.random.default_rng(4)
    a, b = draw_profile(rng, POP_A), draw_profile(rng, POP_B)
    result = compare(a, b, R)
    pa, pb = a.prob.tolist(), b.prob.tolist()
    for layer in range(2):
        kept = ref.retained(ref.top_r(pa[layer], R), pb[layer])
        best = ref.retained(ref.top_r(pb[layer], R), pb[layer])
        assert result.layers["retained_mass_rel_a_to_b"][layer] == pytest.approx(kept / best)
    assert result.mean["retained_mass_rel_a_to_b"] == pytest.approx(
        np.mean(result.layers["retained_mass_rel_a_to_b"])
    )


def test_per_layer_mask_sizes_use_the_best_mask_of_that_size():
    q = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    mask = np.array([[False, True, True], [True, False, False]])  # 2 experts, then 1
    expected = [(0.3 + 0.2) / (0.5 + 0.3), 0.1 / 0.6]
    np.testing.assert_allclose(m.retained_mass_rel(mask, q), expected)


# --------------------------------------------------------------------------- grouped units


def test_large_bundles_resample_blocks_of_consecutive_sequences():
    """Sequence i routes only to expert i, so each unit's sums show which sequences it holds."""
    n = 23
    prob_sum = np.zeros((n, 1, n), dtype=np.float32)
    prob_sum[np.arange(n), 0, np.arange(n)] = 1.0
    tokens = np.arange(1, n + 1)
    tensors = {"prob_sum": prob_sum, "token_count": tokens, "example_ids": np.arange(n)}
    profile = Profile(Bundle(Path("onehot.safetensors"), {}, tensors))
    units = u.resampling_units(profile, max_units=5)
    assert units.count == 5
    membership = units.prob.reshape(5, n)
    assert set(np.unique(membership)) <= {0.0, 1.0}
    assert (membership.sum(axis=0) == 1).all()  # every sequence in exactly one block
    sizes = membership.sum(axis=1)
    assert sizes.max() - sizes.min() <= 1
    for g in range(5):
        members = np.flatnonzero(membership[g])
        assert np.array_equal(members, np.arange(members[0], members[-1] + 1))  # consecutive
        assert units.tokens[g] == tokens[members].sum()
    # Below the limit the units are the sequences themselves.
    assert u.resampling_units(profile, max_units=23).count == 23


def test_grouped_units_keep_coverage_and_a_calibrated_test(monkeypatch):
    """Blocks of two sequences (MAX_UNITS = N/2): intervals still cover, p-values stay calibrated."""
    monkeypatch.setattr(u, "MAX_UNITS", N // 2)
    truth = population_values(POP_A, POP_B)
    rng = np.random.default_rng(31)
    covered = dict.fromkeys(truth, 0)
    small_p = 0
    for draw in range(DRAWS):
        a, b = draw_profile(rng, POP_A), draw_profile(rng, POP_B)
        ci = u.bootstrap_compare(a, b, R, replicates=200, seed=draw)
        assert u.resampling_units(a).count == N // 2
        intervals = {
            "retained_mass_a_to_b": ci.bivariate.mean["retained_mass_a_to_b"],
            "retained_mass_rel_a_to_b": ci.bivariate.mean["retained_mass_rel_a_to_b"],
            "n_eff": ci.univariate_a.mean["n_eff"],
            "entropy_bits": ci.univariate_a.mean["entropy_bits"],
        }
        for key, (lo, hi) in intervals.items():
            covered[key] += int(lo <= truth[key] <= hi)
        same = draw_profile(rng, POP_A)
        small_p += (
            u.permutation_test(a, same, R, permutations=200, seed=draw).js_divergence_p < 0.05
        )
    rates = {key: hits / DRAWS for key, hits in covered.items()}
    assert all(0.90 <= rate <= 0.99 for rate in rates.values()), rates
    assert small_p / DRAWS < 0.10


@pytest.mark.parametrize("replicates", [2, 3, 200, 201])
@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.999])
def test_linear_percentiles_are_numpys_bit_for_bit(replicates, level):
    """The percentiles that avoid numpy.ma's import give np.percentile's values exactly."""
    rng = np.random.default_rng(replicates)
    tail = 100.0 * (1.0 - level) / 2.0
    for values in (
        rng.standard_normal((replicates, 36)),
        np.round(rng.standard_normal((replicates, 4, 3)), 1),  # ties
        rng.integers(0, 3, size=(replicates,)).astype(float),
    ):
        expected = np.percentile(values, [tail, 100.0 - tail], axis=0)
        got = u.linear_percentiles(values, [tail, 100.0 - tail])
        assert got.shape == expected.shape and np.array_equal(got, expected)
