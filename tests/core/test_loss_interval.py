"""The paired bootstrap of the loss increase against a naive per-replicate loop, same seed."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluate.loss_interval import loss_increase_interval


def naive_interval(nll_mask, nll_base, tokens, replicates, level, seed):
    """Draw n samples with replacement per replicate (the same draws), sum, divide, percentile."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(tokens), size=(replicates, len(tokens)))
    values = []
    for row in draws:
        diff = sum(nll_mask[i] - nll_base[i] for i in row)
        count = sum(tokens[i] for i in row)
        values.append(diff / count)
    tail = 100 * (1 - level) / 2
    return tuple(np.percentile(values, [tail, 100 - tail]))


def test_interval_equals_a_naive_loop_with_the_same_seed():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 60, size=23)
    nll_base = tokens * rng.uniform(2.0, 4.0, size=23)
    nll_mask = nll_base + tokens * rng.normal(0.2, 0.1, size=23)
    got = loss_increase_interval(nll_mask, nll_base, tokens, replicates=400, level=0.9, seed=5)
    assert got == pytest.approx(naive_interval(nll_mask, nll_base, tokens, 400, 0.9, 5), abs=1e-12)
    point = (nll_mask - nll_base).sum() / tokens.sum()
    assert got[0] < point < got[1]
    again = loss_increase_interval(nll_mask, nll_base, tokens, replicates=400, level=0.9, seed=5)
    assert again == got
    assert loss_increase_interval(nll_mask, nll_base, tokens, replicates=400, seed=6) != got


def test_pairing_removes_the_shared_variance():
    """Hard and easy samples shift both models alike: the paired interval stays narrow."""
    rng = np.random.default_rng(1)
    tokens = np.full(40, 20)
    nll_base = tokens * rng.uniform(1.0, 6.0, size=40)  # very unequal samples
    nll_mask = nll_base + tokens * 0.1  # the same +0.1 nats on every token
    lo, hi = loss_increase_interval(nll_mask, nll_base, tokens, replicates=200)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.1)


def test_no_replicates_or_no_samples_give_no_interval():
    assert loss_increase_interval([1.0], [0.5], [3], replicates=0) is None
    assert loss_increase_interval([], [], [], replicates=10) is None
