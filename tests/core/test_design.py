"""core.design: the objective against hand loops, the mix never worse than its baselines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.design import (
    Candidate,
    Objective,
    design,
    mix_signature,
    uniform_counts,
    write_calibration,
)
from core.engine import Profile
from core.errors import LensError
from tests.conftest import make_bundle


def hand_objective(mask: np.ndarray, targets: list[np.ndarray], r: int) -> list[float]:
    """Per target: mean over layers of kept mass / the mass of its own r best experts."""
    out = []
    for q in targets:
        shares = []
        for layer in range(q.shape[0]):
            values = [float(v) for v in q[layer]]
            best = sum(sorted(values, reverse=True)[:r])
            kept = sum(v for e, v in enumerate(values) if mask[layer, e])
            shares.append(kept / best)
        out.append(sum(shares) / len(shares))
    return out


def hand_top_mask(scores: np.ndarray, r: int) -> np.ndarray:
    mask = np.zeros(scores.shape, dtype=bool)
    for layer in range(scores.shape[0]):
        order = sorted(range(scores.shape[1]), key=lambda e: (-scores[layer, e], e))
        mask[layer, order[:r]] = True
    return mask


@pytest.fixture
def profiles(tmp_path):
    out = []
    for k, conc in enumerate((0.2, 0.5, 1.0, 0.3)):
        path = make_bundle(
            tmp_path / f"d{k}.safetensors",
            n=10 + 3 * k,
            layers=3,
            experts=8,
            seed=k,
            concentration=conc,
        )
        out.append(Profile.load(path))
    return out


def test_objective_matches_a_hand_loop(profiles):
    targets = profiles[:2]
    objective = Objective(targets, 3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        mask = hand_top_mask(rng.random((3, 8)), 3)
        expected = hand_objective(mask, [t.prob for t in targets], 3)
        score = objective.of_mask(mask)
        assert list(score.per_target.values()) == pytest.approx(expected, abs=1e-12)
        assert score.value == pytest.approx(min(expected), abs=1e-12)


def test_mix_signature_pools_every_sequence_token_weighted(profiles):
    """Taking each candidate's own count of sequences is pooling all their sums."""
    candidates = [Candidate(p) for p in profiles[:3]]
    counts = np.array([c.sequences for c in candidates])
    pooled_sum = sum(np.asarray(p.bundle.prob_sum, dtype=np.float64).sum(0) for p in profiles[:3])
    pooled_tokens = sum(int(np.asarray(p.bundle.token_count).sum()) for p in profiles[:3])
    assert np.allclose(mix_signature(candidates, counts), pooled_sum / pooled_tokens, atol=1e-12)
    # A vertex is the candidate itself.
    assert np.allclose(mix_signature(candidates, np.array([0, 7, 0])), profiles[1].prob)


def test_uniform_counts():
    assert uniform_counts(3, 10).tolist() == [4, 3, 3]
    assert uniform_counts(4, 2).tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("seed", range(4))
def test_design_is_never_worse_than_any_single_candidate_or_the_uniform_mix(tmp_path, seed):
    rng = np.random.default_rng(seed)
    profiles = [
        Profile.load(
            make_bundle(
                tmp_path / f"c{k}.safetensors",
                n=int(rng.integers(4, 12)),
                layers=2,
                experts=6,
                seed=100 * seed + k,
                concentration=float(rng.uniform(0.1, 1.0)),
            )
        )
        for k in range(4)
    ]
    result = design(profiles, profiles[1:3], r=2, sequences=12)
    doc = result.to_json()
    for name, baseline in doc["baselines"].items():
        assert doc["design"]["value"] >= baseline["value"] - 1e-12, name
    # The reported value is the hand objective of the reported weights' mask.
    counts = np.array([round(doc["design"]["weights"][p.name] * 12) for p in profiles])
    assert counts.sum() == 12
    total = sum(n * p.prob * p.tokens / p.bundle.num_samples for n, p in zip(counts, profiles))
    mask = hand_top_mask(total, 2)
    per_target = hand_objective(mask, [p.prob for p in profiles[1:3]], 2)
    assert doc["design"]["value"] == pytest.approx(min(per_target), abs=1e-12)


def one_layer_bundle(path, distribution, n=2, tokens=10):
    prob = np.tile(np.asarray(distribution, dtype=np.float64) * tokens, (n, 1, 1))
    return Profile.load(
        make_bundle(path, n=n, layers=1, experts=4, token_count=np.full(n, tokens), prob_sum=prob)
    )


def test_design_is_strictly_better_where_a_mix_serves_what_no_single_set_does(tmp_path):
    # The target wants experts {0, 3}. A keeps {0, 1}, B keeps {2, 3}; half of each keeps
    # {0, 3}. C pulls the uniform mix of all three to {1, 2}.
    target = one_layer_bundle(tmp_path / "t.safetensors", [0.45, 0.05, 0.05, 0.45])
    a = one_layer_bundle(tmp_path / "a.safetensors", [0.4, 0.35, 0.05, 0.2])
    b = one_layer_bundle(tmp_path / "b.safetensors", [0.2, 0.05, 0.35, 0.4])
    c = one_layer_bundle(tmp_path / "c.safetensors", [0.0, 0.5, 0.5, 0.0])
    doc = design([a, b, c], [target], r=2, sequences=6).to_json()
    assert doc["design"]["value"] == pytest.approx(1.0)
    assert doc["design"]["weights"] == {"a": 0.5, "b": 0.5, "c": 0.0}
    best_baseline = max(v["value"] for v in doc["baselines"].values())
    assert best_baseline == pytest.approx(0.5 / 0.9)
    assert doc["baselines"]["uniform"]["value"] == pytest.approx(0.1 / 0.9)
    assert doc["design"]["value"] > best_baseline + 0.4


def test_selection_reports_the_objective_of_the_sequences_it_chose(profiles):
    result = design(profiles, profiles[:2], r=3, sequences=9)
    picks = result.selection.picks
    assert len(picks) == 9 and len(set(picks)) == 9
    total = np.zeros((3, 8))
    tokens = 0
    for c, row in picks:
        bundle = profiles[c].bundle
        total += np.asarray(bundle.prob_sum[row], dtype=np.float64)
        tokens += int(bundle.token_count[row])
    mask = hand_top_mask(total / tokens, 3)
    expected = hand_objective(mask, [p.prob for p in profiles[:2]], 3)
    assert result.selection.score.value == pytest.approx(min(expected), abs=1e-12)
    ids = result.to_json()["selection"]["example_ids"]
    assert sum(len(v) for v in ids.values()) == 9
    assert set(ids) == {p.name for p in profiles}


def test_json_contract(profiles):
    doc = design(profiles, profiles[:2], r=3, sequences=5).to_json()
    assert list(doc) == ["r", "sequences", "objective", "design", "selection", "baselines"]
    assert doc["objective"] == "min_target_relative_retained_mass"
    assert list(doc["design"]) == ["weights", "value", "per_target"]
    assert list(doc["selection"]) == ["example_ids", "value", "per_target"]
    assert set(doc["baselines"]) == {p.name for p in profiles} | {"uniform"}
    assert sum(doc["design"]["weights"].values()) == pytest.approx(1.0)
    json.dumps(doc, allow_nan=False)


def test_default_sequences_is_the_pooled_convergence_count(profiles):
    from core.ablation import ablate
    from core.design import _pooled_bundle

    result = design(profiles, profiles[:1], r=3)
    by_name = sorted((p.bundle for p in profiles), key=lambda b: b.path.name)
    pooled = Profile(_pooled_bundle(by_name))
    step = max(1, pooled.bundle.num_samples // 256)
    converged = ablate(pooled, 3, step, seed=0).converged_at()
    assert result.sequences == (converged or pooled.bundle.num_samples)


def test_default_sequences_do_not_depend_on_the_order_candidates_are_given(profiles):
    """The same candidates in any order: one default count (the pool is shuffled with a
    fixed seed, so pooling in the given order made the answer depend on it)."""
    counts = {design(order, profiles[:1], r=3).sequences for order in (profiles, profiles[::-1])}
    assert len(counts) == 1


def test_write_calibration_takes_texts_from_each_candidates_file(tmp_path, profiles):
    result = design(profiles[:2], profiles[:2], r=3, sequences=6)
    data = []
    for k, p in enumerate(profiles[:2]):
        path = tmp_path / f"data{k}.jsonl"
        path.write_text(
            "".join(
                json.dumps({"text": f"{p.name} #{i}"}) + "\n" for i in range(p.bundle.num_samples)
            )
        )
        data.append(path)
    out = tmp_path / "calib.jsonl"
    assert write_calibration(out, result, data) == 6
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        assert record["text"] == f"{record['dataset']} #{record['example_id']}"
    ids = result.to_json()["selection"]["example_ids"]
    assert sorted((r["dataset"], r["example_id"]) for r in records) == sorted(
        (name, i) for name, values in ids.items() for i in values
    )
    short = tmp_path / "short.jsonl"
    short.write_text('{"text": "only one"}\n')
    with pytest.raises(LensError, match="has no sample"):
        write_calibration(tmp_path / "x.jsonl", result, [short, short])


def test_errors(profiles, tmp_path):
    with pytest.raises(LensError, match="at least one target"):
        design(profiles, [], r=2)
    with pytest.raises(LensError, match="outside"):
        design(profiles, profiles, r=99)
    other = Profile.load(make_bundle(tmp_path / "other.safetensors", layers=2, experts=8))
    with pytest.raises(LensError, match="same model"):
        design(profiles, [other], r=2)
