"""core.samples against hand-written loops: per-sample JS, leave-one-out influence, duplicates."""

from __future__ import annotations

import math

import numpy as np
import pytest

import core.samples as samples
from core.errors import LensError
from core.formats.bundle import load_bundle
from core.samples import analyse, duplicate_groups, loo_mask_changes, sample_js
from tests.conftest import make_bundle


def hand_js_bits(p: list[float], q: list[float]) -> float:
    """JS divergence in bits of two distributions, one expert at a time."""
    sp, sq = sum(p), sum(q)
    p = [x / sp for x in p]
    q = [x / sq for x in q]
    total = 0.0
    for a, b in zip(p, q):
        mid = (a + b) / 2
        if a > 0:
            total += 0.5 * a * math.log2(a / mid)
        if b > 0:
            total += 0.5 * b * math.log2(b / mid)
    return total


def hand_top(scores: list[float], r: int) -> set[int]:
    """The r best experts; ties to the lower index."""
    return set(sorted(range(len(scores)), key=lambda e: (-scores[e], e))[:r])


def hand_loo_changes(prob_sum: np.ndarray, tokens: np.ndarray, r: int) -> list[int]:
    """Leave each sample out, sum the others from scratch, count experts leaving each mask."""
    n, num_layers, num_experts = prob_sum.shape
    out = []
    for i in range(n):
        changes = 0
        for layer in range(num_layers):
            full = [
                sum(float(prob_sum[j, layer, e]) for j in range(n)) / int(tokens.sum())
                for e in range(num_experts)
            ]
            rest_tokens = int(tokens.sum()) - int(tokens[i])
            without = [
                sum(float(prob_sum[j, layer, e]) for j in range(n) if j != i) / rest_tokens
                for e in range(num_experts)
            ]
            changes += len(hand_top(full, r) - hand_top(without, r))
        out.append(changes)
    return out


@pytest.fixture
def small(tmp_path):
    return load_bundle(make_bundle(tmp_path / "s.safetensors", n=14, layers=3, experts=8, seed=3))


def test_per_sample_js_matches_a_hand_loop(small):
    report = analyse(small, 3)
    prob, tokens = np.asarray(small.prob_sum, dtype=np.float64), np.asarray(small.token_count)
    dataset = prob.sum(axis=0) / tokens.sum()
    for i in range(small.num_samples):
        per_layer = [
            hand_js_bits(list(prob[i, layer] / tokens[i]), list(dataset[layer]))
            for layer in range(small.num_layers)
        ]
        assert report.js_layers[i] == pytest.approx(per_layer, abs=2e-6)
        assert report.js_mean[i] == pytest.approx(sum(per_layer) / len(per_layer), abs=2e-6)
        assert report.js_max[i] == pytest.approx(max(per_layer), abs=2e-6)


@pytest.mark.parametrize("r", [1, 3, 5, 7])
def test_leave_one_out_equals_recomputing_the_mask_without_each_sample(small, r):
    changes = analyse(small, r).mask_changes
    expected = hand_loo_changes(np.asarray(small.prob_sum), np.asarray(small.token_count), r)
    assert changes.tolist() == expected
    assert any(expected), "the case must exercise a changing mask"


def test_leave_one_out_is_exact_on_ties(tmp_path):
    # Integer sums make exact ties between experts, with and without a sample.
    rng = np.random.default_rng(7)
    prob = rng.integers(0, 4, size=(10, 2, 6)).astype(np.float32)
    tokens = prob.sum(axis=-1)[:, 0].astype(np.int64)
    prob[:, 1] = prob[:, 1] / np.maximum(prob[:, 1].sum(-1, keepdims=True), 1) * tokens[:, None]
    tokens = np.maximum(tokens, 1)
    prob[:, 0] = np.where(prob[:, 0].sum(-1, keepdims=True) > 0, prob[:, 0], 1.0 / 6)
    total = np.add.reduce(prob, axis=0, dtype=np.float64)
    for r in range(1, 6):
        assert loo_mask_changes(prob, tokens, total, r).tolist() == hand_loo_changes(
            prob, tokens, r
        )


def test_leave_one_out_of_the_only_sample_is_undefined(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "one.safetensors", n=1))
    assert analyse(bundle, 2).to_json()["samples"][0]["mask_changes"] is None


def hand_groups(prob: np.ndarray, tokens: np.ndarray, threshold: float) -> list[set[int]]:
    """Connected components of 'mean JS over layers ≤ threshold', by breadth-first search."""
    n = len(tokens)
    close = {i: set() for i in range(n)}
    for i in range(n):
        for j in range(i + 1, n):
            js = np.mean(
                [hand_js_bits(list(prob[i, la]), list(prob[j, la])) for la in range(prob.shape[1])]
            )
            if js <= threshold:
                close[i].add(j)
                close[j].add(i)
    seen, groups = set(), []
    for i in range(n):
        if i in seen or not close[i]:
            continue
        group, todo = set(), [i]
        while todo:
            k = todo.pop()
            if k not in group:
                group.add(k)
                todo.extend(close[k])
        seen |= group
        groups.append(group)
    return groups


def planted(n: int = 30, layers: int = 3, experts: int = 8, seed: int = 0):
    """Random samples with some exact and near copies (another length, a little noise)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 50, size=n).astype(np.int64)
    per_token = rng.dirichlet(np.full(experts, 0.7), size=(n, layers))
    for copy, source, noise in [(5, 1, 0.0), (9, 1, 0.01), (17, 12, 0.005), (20, 3, 0.3)]:
        jitter = 1 + noise * rng.standard_normal((layers, experts))
        per_token[copy] = per_token[source] * np.abs(jitter)
        per_token[copy] /= per_token[copy].sum(-1, keepdims=True)
    return (per_token * tokens[:, None, None]).astype(np.float32), tokens


def as_sets(groups: np.ndarray) -> list[set[int]]:
    return [set(np.flatnonzero(groups == g).tolist()) for g in range(groups.max() + 1)]


@pytest.mark.parametrize("threshold", [1e-4, 2e-3, 2e-2])
def test_duplicate_groups_equal_a_brute_force_over_all_pairs(threshold):
    prob, tokens = planted()
    groups = duplicate_groups(prob, tokens, threshold)
    expected = hand_groups(np.asarray(prob, dtype=np.float64), tokens, threshold)
    assert as_sets(groups) == expected
    assert any({1, 5} <= g for g in expected)


def test_hashed_search_finds_the_planted_duplicates(monkeypatch):
    prob, tokens = planted(n=400, layers=6, experts=16, seed=2)
    exact = duplicate_groups(prob, tokens, 2e-3)
    monkeypatch.setattr(samples, "EXACT_PAIR_WORK", 0)
    hashed = duplicate_groups(prob, tokens, 2e-3)
    assert as_sets(hashed) == as_sets(exact)
    assert any({1, 5, 9} <= g for g in as_sets(hashed))


def test_the_bound_behind_the_duplicate_search_holds():
    """JS in bits ≥ ½ Σ (√p − √q)², the inequality the candidate search relies on."""
    rng = np.random.default_rng(5)
    for concentration in (0.05, 0.5, 5.0):
        for _ in range(200):
            p, q = rng.dirichlet(np.full(8, concentration), size=2)
            p[rng.random(8) < 0.2] = 0
            p /= p.sum()
            hellinger = 0.5 * float(((np.sqrt(p) - np.sqrt(q)) ** 2).sum())
            assert hand_js_bits(list(p), list(q)) >= hellinger - 1e-12


def test_a_threshold_too_loose_is_refused(monkeypatch):
    prob, tokens = planted(n=200)
    monkeypatch.setattr(samples, "EXACT_PAIR_WORK", 0)
    with pytest.raises(LensError, match="too loose"):
        duplicate_groups(prob, tokens, 1.0, max_pairs=100)


def test_sample_js_is_nan_for_a_sample_without_tokens():
    prob = np.ones((3, 2, 4), dtype=np.float32)
    prob[1] = 0
    tokens = np.array([4, 0, 4])
    js = sample_js(prob, tokens, prob.sum(0) / 8)
    assert np.isnan(js[1]).all() and np.allclose(js[[0, 2]], 0)


def test_order_and_json_contract(small):
    report = analyse(small, 3)
    doc = report.to_json()
    assert set(doc) == {"bundle", "r", "samples"}
    assert [row["index"] for row in doc["samples"]] == list(range(small.num_samples))
    assert set(doc["samples"][0]) == {
        "index",
        "example_id",
        "tokens",
        "js_divergence_mean",
        "js_divergence_max",
        "mask_changes",
        "duplicate_group",
    }
    by_js = report.order("js_mean")
    values = [doc["samples"][i]["js_divergence_mean"] for i in by_js]
    assert values == sorted(values, reverse=True)
    assert report.order("index").tolist() == list(range(small.num_samples))
    with pytest.raises(LensError, match="unknown sort column"):
        report.order("nope")
