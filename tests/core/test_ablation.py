"""Ablation (Jaccard vs sequence count) and the N-way matrix against naive recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from core.ablation import ablate, checkpoint_counts
from core.engine import Profile, compare
from core.errors import LensError
from core.matrix import matrix
from tests.conftest import make_bundle
from tests.core import reference as ref


@pytest.fixture
def profile(tmp_path):
    return Profile.load(make_bundle(tmp_path / "a.safetensors", n=23, layers=3, experts=8, seed=5))


def _naive_curves(profile: Profile, r: int, counts: list[int], order: list[int]):
    bundle = profile.bundle
    masks = []
    for n in counts:
        p = ref.signature(bundle.prob_sum.tolist(), bundle.token_count.tolist(), order[:n])
        masks.append([ref.top_r(p[layer], r) for layer in range(bundle.num_layers)])
    layers = range(bundle.num_layers)
    to_final = [sum(ref.jaccard(mk[l], masks[-1][l]) for l in layers) / len(layers) for mk in masks]
    stepwise = [None] + [
        sum(ref.jaccard(masks[k - 1][l], masks[k][l]) for l in layers) / len(layers)
        for k in range(1, len(masks))
    ]
    return to_final, stepwise


@pytest.mark.parametrize(("r", "step", "cap"), [(2, 3, None), (3, 5, 20), (1, 1, 6), (8, 4, 100)])
def test_ablation_matches_resumming_from_scratch(profile, r, step, cap):
    result = ablate(profile, r, step, cap)
    limit = 23 if cap is None else min(cap, 23)
    assert result.counts == list(range(step, limit + 1, step))
    to_final, stepwise = _naive_curves(profile, r, result.counts, list(range(23)))
    assert result.to_final == pytest.approx(to_final)
    assert result.stepwise[0] is None
    assert result.stepwise[1:] == pytest.approx(stepwise[1:])
    assert result.to_final[-1] == 1.0
    doc = result.to_json()
    assert doc["counts"] == result.counts
    assert len(doc["layers"]["to_final"]) == len(result.counts)
    assert len(doc["layers"]["to_final"][0]) == 3


def test_ablation_seed_shuffles_order(profile):
    seed = 7
    result = ablate(profile, 2, 4, None, seed=seed)
    order = np.random.default_rng(seed).permutation(23).tolist()
    to_final, stepwise = _naive_curves(profile, 2, result.counts, order)
    assert result.to_final == pytest.approx(to_final)
    assert result.stepwise[1:] == pytest.approx(stepwise[1:])


def test_converged_at_is_first_count_that_stays_above(profile):
    result = ablate(profile, 2, 1, None)
    values = result.to_final
    expected = None
    for k in range(len(values) - 1):  # the last checkpoint is the reference: it cannot count
        if all(v >= 0.95 for v in values[k:]):
            expected = result.counts[k]
            break
    assert result.converged_at(0.95) == expected
    assert result.converged_at(0.0) == result.counts[0]


def test_reaching_the_threshold_only_at_the_last_checkpoint_is_not_convergence(tmp_path):
    # Two halves routed to disjoint experts: the mask of the first half is not the final one.
    prob = np.zeros((4, 1, 4), np.float32)
    prob[:2, 0, 0], prob[:2, 0, 1] = 6, 4  # first two samples: experts 0 > 1
    prob[2:, 0, 2], prob[2:, 0, 3] = 60, 40  # last two: experts 2 > 3, much heavier
    path = make_bundle(
        tmp_path / "d.safetensors", n=4, layers=1, experts=4, prob_sum=prob,
        token_count=np.array([10, 10, 100, 100]), energy=False,
    )  # fmt: skip
    result = ablate(Profile.load(path), 1, 1, None)
    assert result.to_final == [0.0, 0.0, 1.0, 1.0]
    assert result.converged_at(0.95) == 3  # from n = 3 on, before the last checkpoint
    short = ablate(Profile.load(path), 1, 2, None)  # checkpoints 2 and 4 only
    assert short.to_final == [0.0, 1.0]
    assert short.converged_at(0.95) is None


def test_zero_token_prefix_gives_null(tmp_path):
    tokens = np.array([0, 0, 5, 6, 7, 8])
    path = make_bundle(tmp_path / "z.safetensors", n=6, token_count=tokens, energy=False)
    # zero-token samples carry zero sums, as collection writes them
    result = ablate(Profile.load(path), 2, 1)
    assert result.to_final[0] is None and result.to_final[1] is None
    assert result.to_final[2] is not None
    assert result.stepwise[1] is None and result.stepwise[2] is None
    assert result.stepwise[3] is not None


def test_checkpoint_errors():
    with pytest.raises(LensError):
        checkpoint_counts(0, None, 10)
    with pytest.raises(LensError, match="step 20"):
        checkpoint_counts(20, None, 10)
    assert checkpoint_counts(3, 100, 10) == [3, 6, 9]


def test_matrix_agrees_with_pairwise_compare(tmp_path):
    profiles = [
        Profile.load(
            make_bundle(tmp_path / f"{i}.safetensors", n=10, seed=i, concentration=0.3 + i)
        )
        for i in range(3)
    ]
    result = matrix(profiles, 3)
    doc = result.to_json()
    for i in range(3):
        assert doc["jaccard"][i][i] == 1.0
        assert doc["js_divergence"][i][i] == pytest.approx(0.0, abs=1e-12)
        for j in range(3):
            if i == j:
                continue
            pa = ref.signature(
                profiles[i].bundle.prob_sum.tolist(),
                profiles[i].bundle.token_count.tolist(),
                range(10),
            )
            pb = ref.signature(
                profiles[j].bundle.prob_sum.tolist(),
                profiles[j].bundle.token_count.tolist(),
                range(10),
            )
            layers = range(len(pa))
            jac = sum(ref.jaccard(ref.top_r(pa[l], 3), ref.top_r(pb[l], 3)) for l in layers) / len(
                pa
            )
            kept = sum(ref.retained(ref.top_r(pa[l], 3), pb[l]) for l in layers) / len(pa)
            js = sum(ref.js_bits(pa[l], pb[l]) for l in layers) / len(pa)
            assert doc["jaccard"][i][j] == pytest.approx(jac)
            assert doc["retained_mass"][i][j] == pytest.approx(kept)
            assert doc["js_divergence"][i][j] == pytest.approx(js)
            assert doc["retained_mass"][i][j] == pytest.approx(
                compare(profiles[i], profiles[j], 3).mean["retained_mass_a_to_b"]
            )


def test_matrix_needs_two(tmp_path):
    with pytest.raises(LensError, match="at least two"):
        matrix([Profile.load(make_bundle(tmp_path / "a.safetensors"))], 2)
