"""Rank tests over masks: vectorised ranks, the bootstrap interval and the permutation p-value
against scipy and naive loops with the same seeded draws; p roughly uniform under the null."""

from __future__ import annotations

import numpy as np
import pytest

from core.rank_tests import (
    bootstrap_indices,
    permutation_indices,
    rank_test,
    row_average_ranks,
    row_spearman,
)

stats = pytest.importorskip("scipy.stats")


def test_row_ranks_and_spearman_equal_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(40, 9)).astype(float)  # many ties
    y = rng.random((40, 9))
    for row in range(40):
        assert row_average_ranks(x)[row] == pytest.approx(stats.rankdata(x[row]))
        expected = stats.spearmanr(x[row], y[row]).statistic
        got = row_spearman(x, y)[row]
        if np.isnan(expected):
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-12)
    assert np.isnan(row_spearman(np.ones((1, 5)), y[:1, :5])[0])


def test_interval_and_p_value_against_naive_loops():
    rng = np.random.default_rng(7)
    x = rng.random(15)
    y = -x + rng.normal(0, 0.4, 15)
    got = rank_test(x, y, replicates=300, permutations=400, level=0.9, seed=11)
    assert got.spearman == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    rhos = []
    for idx in bootstrap_indices(15, 300, 11):
        if np.ptp(x[idx]) == 0 or np.ptp(y[idx]) == 0:
            continue
        rhos.append(stats.spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.percentile(rhos, [5, 95])
    assert got.ci == pytest.approx((lo, hi), abs=1e-12)
    extreme = 0
    for perm in permutation_indices(15, 400, 11):
        if abs(stats.spearmanr(x, y[perm]).statistic) >= abs(got.spearman) - 1e-12:
            extreme += 1
    assert got.p_value == pytest.approx((1 + extreme) / 401)
    assert got.n == 15


def test_missing_pairs_are_dropped_and_too_few_are_null():
    x = np.array([1.0, np.nan, 3.0, 4.0, 2.0])
    y = np.array([0.1, 0.5, 0.3, 0.2, 0.9])
    got = rank_test(x, y, replicates=50, permutations=50)
    assert got.n == 4
    assert got.spearman == pytest.approx(
        stats.spearmanr(x[[0, 2, 3, 4]], y[[0, 2, 3, 4]]).statistic
    )
    few = rank_test([1.0, 2.0], [2.0, 1.0])
    assert (few.spearman, few.ci, few.p_value, few.n) == (None, None, None, 2)
    constant = rank_test([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert constant.spearman is None and constant.n == 4


def test_p_values_are_roughly_uniform_under_the_null():
    rng = np.random.default_rng(3)
    p = np.array(
        [
            rank_test(
                rng.random(12), rng.random(12), replicates=2, permutations=199, seed=s
            ).p_value
            for s in range(300)
        ]
    )
    # Under the null P(p ≤ a) ≈ a; binomial 300 draws, generous bounds (≈ 4 sd).
    for a in (0.05, 0.2, 0.5, 0.8):
        share = float(np.mean(p <= a))
        assert abs(share - a) < 4 * np.sqrt(a * (1 - a) / 300) + 0.01, (a, share)
    assert p.min() >= 1 / 200
