"""Every predictor of core.predictors against a hand-written loop over the bundle's tensors,
missing statistics as null predictors, and the groups and rank tests predict-vs-actual reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.engine import Profile
from core.formats.bundle import load_bundle
from core.predict import mask_groups, predict_vs_actual, source_label
from core.predictors import PREDICTORS, predictor_values
from tests.conftest import make_bundle
from tests.core.test_predict import evaluation, mask, result

LAYERS, EXPERTS, TOP_K = 3, 8, 2
KEEPS = [
    [[0, 1], [2, 3], [4, 5]],
    [[6, 7], [0, 1], [2, 3]],
    [[0, 2, 4], [1, 3, 5], [0, 6, 7]],
    [[1, 5], [5, 6], [0, 3]],
]


def _full_bundle(tmp_path, seed=3, zero_slot_sample=True):
    rng = np.random.default_rng(seed)
    n = 9
    tokens = rng.integers(2, 30, size=n)
    if zero_slot_sample:
        # A sample with no tokens records no slots (a valid bundle cannot lack slots for
        # tokens it has): predictors must skip it rather than divide by zero.
        tokens[0] = 0
    topk = np.zeros((n, LAYERS, EXPERTS), dtype=np.int32)
    for i in range(n):
        for layer in range(LAYERS):
            for _ in range(tokens[i]):  # each token picks TOP_K distinct experts
                for e in rng.choice(EXPERTS, size=TOP_K, replace=False):
                    topk[i, layer, e] += 1
    extra = {
        "topk_count": topk,
        "reap_sum": (rng.random((n, LAYERS, EXPERTS)) * tokens[:, None, None]).astype(np.float32),
    }
    path = make_bundle(
        tmp_path / "held.safetensors", n=n, token_count=tokens, seed=seed, extra=extra
    )
    return load_bundle(path)


def _share_loop(tensor, kept_layers):
    """Σ_n Σ_{e kept} t[n,l,e] / Σ_n Σ_e t[n,l,e], mean over layers — plain loops."""
    shares = []
    for layer, kept in enumerate(kept_layers):
        kept_sum = whole = 0.0
        for i in range(tensor.shape[0]):
            for e in range(tensor.shape[2]):
                value = float(tensor[i, layer, e])
                whole += value
                if e in kept:
                    kept_sum += value
        if whole > 0:
            shares.append(kept_sum / whole)
    return sum(shares) / len(shares)


def _intact_loop(topk, tokens, kept_layers, k):
    per_layer = []
    for layer, kept in enumerate(kept_layers):
        num = den = 0.0
        for i in range(topk.shape[0]):
            slots = sum(int(topk[i, layer, e]) for e in range(topk.shape[2]))
            if slots == 0:
                continue
            survived = sum(int(topk[i, layer, e]) for e in kept)
            num += float(tokens[i]) * (survived / slots) ** k
            den += float(tokens[i])
        per_layer.append(num / den)
    return sum(per_layer) / len(per_layer)


def _mass_loop(prob_sum, tokens, kept_layers):
    total = float(sum(int(t) for t in tokens))
    per_layer, rel = [], []
    for layer, kept in enumerate(kept_layers):
        p = [sum(float(prob_sum[i, layer, e]) for i in range(prob_sum.shape[0])) / total
             for e in range(prob_sum.shape[2])]  # fmt: skip
        per_layer.append(sum(p[e] for e in kept))
        rel.append(per_layer[-1] / sum(sorted(p, reverse=True)[: len(kept)]))
    return sum(per_layer) / len(per_layer), min(per_layer), sum(rel) / len(rel)


def test_every_predictor_against_a_loop_over_the_bundle(tmp_path):
    bundle = _full_bundle(tmp_path)
    profile = Profile(bundle)
    tokens = np.asarray(bundle.token_count)
    for layers in KEEPS:
        keep = mask(layers).as_bool()
        got = predictor_values(keep, profile)
        assert list(got) == list(PREDICTORS)
        mass, worst, rel = _mass_loop(np.asarray(bundle.prob_sum), tokens, layers)
        assert got["retained_mass"] == pytest.approx(mass, abs=1e-12)
        assert got["retained_mass_min"] == pytest.approx(worst, abs=1e-12)
        assert got["retained_mass_rel"] == pytest.approx(rel, abs=1e-12)
        for name, tensor in (
            ("retained_energy", "energy_sum"),
            ("retained_reap", "reap_sum"),
            ("retained_topk", "topk_count"),
        ):
            expected = _share_loop(np.asarray(bundle.tensors[tensor]), layers)
            assert got[name] == pytest.approx(expected, abs=1e-12), name
        expected = _intact_loop(np.asarray(bundle.tensors["topk_count"]), tokens, layers, TOP_K)
        assert got["topk_intact"] == pytest.approx(expected, abs=1e-12)


def test_topk_intact_is_one_for_the_union_and_below_the_slot_share_otherwise(tmp_path):
    profile = Profile(_full_bundle(tmp_path, zero_slot_sample=False))
    everything = np.ones((LAYERS, EXPERTS), dtype=bool)
    assert predictor_values(everything, profile)["topk_intact"] == pytest.approx(1.0)
    half = mask(KEEPS[2]).as_bool()
    got = predictor_values(half, profile)
    assert 0 < got["topk_intact"] < got["retained_topk"] < 1


def test_missing_statistics_are_null_predictors(bundle_factory):
    profile = Profile(load_bundle(bundle_factory("held", energy=False)))
    got = predictor_values(mask(KEEPS[0]).as_bool(), profile)
    for name in ("retained_energy", "retained_reap", "retained_topk", "topk_intact"):
        assert got[name] is None
    assert got["retained_mass"] is not None
    increases = [0.3, 0.1, 0.2, 0.4]
    ev = evaluation([result(mask(k, f"m{i}"), d) for i, (k, d) in enumerate(zip(KEEPS, increases))])
    report = predict_vs_actual([ev], [profile], replicates=50, permutations=50)
    doc = report.to_json()
    json.dumps(doc, allow_nan=False)
    tests = {t["name"]: t for t in doc["evaluations"][0]["predictors"]}
    assert tests["retained_energy"]["spearman"] is None
    assert tests["retained_energy"]["ci"] is None and tests["retained_energy"]["n"] == 0
    assert tests["retained_mass"]["n"] == 4


def test_groups_follow_source_labels_and_the_user_mapping():
    def sourced(name, sources, criterion="mass"):
        m = mask(KEEPS[0], name, criterion)
        object.__setattr__(m, "sources", sources)
        return result(m, 0.1)

    results = [
        sourced("a", ["runs/held.safetensors"]),
        sourced("b", ["held.safetensors"], "reap"),
        sourced("c", ["x/news.safetensors"]),
        sourced("d", ["held.safetensors", "news.safetensors"]),
        sourced("e", []),
        sourced("f", ["held"], "reap"),
        sourced("g", ["wiki.safetensors"], "reap"),
    ]
    ev = evaluation(results, dataset="held")
    assert source_label("a/b/news_en.safetensors") == "news_en"
    groups = mask_groups(ev, results)
    assert groups == {
        "same_data": [0, 1, 5],
        "criterion:mass": [0, 2, 3, 4],
        "criterion:reap": [1, 5, 6],
    }
    mapped = mask_groups(ev, results, {"news": "en", "held": "en"})
    assert mapped["same_data"] == [0, 1, 2, 3, 5]


def test_reported_tests_match_the_points_and_scipy(tmp_path):
    scipy_stats = pytest.importorskip("scipy.stats")
    profile = Profile(_full_bundle(tmp_path))
    rng = np.random.default_rng(1)
    masks = []
    for i in range(12):
        layers = [
            sorted(rng.choice(EXPERTS, size=3, replace=False).tolist()) for _ in range(LAYERS)
        ]
        masks.append(mask(layers, f"m{i}", "mass" if i % 2 else "reap"))
    increases = rng.random(12).tolist()
    ev = evaluation([result(m, d) for m, d in zip(masks, increases)])
    report = predict_vs_actual([ev], [profile], replicates=200, permutations=200, seed=4)
    tests = {t.name: t for t in report.evaluations[0].predictors}
    for name in PREDICTORS:
        values = [p.predictors[name] for p in report.points]
        expected = scipy_stats.spearmanr(values, increases).statistic
        assert tests[name].overall.spearman == pytest.approx(expected, abs=1e-12)
        odd = [i for i in range(12) if i % 2]
        got = tests[name].groups["criterion:mass"].spearman
        expected = scipy_stats.spearmanr([values[i] for i in odd], [increases[i] for i in odd])
        assert got == pytest.approx(expected.statistic, abs=1e-12)
        assert not math.isnan(tests[name].overall.p_value)
