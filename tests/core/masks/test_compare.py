"""Masks side by side: per-layer Jaccard and retained mass against naive set arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import LensError
from core.formats.bundle import load_bundle
from core.formats.mask import Mask
from core.masks.compare import compare_masks, masks_for_criteria
from core.masks.make import make_mask
from tests.conftest import make_bundle
from tests.core import reference as ref


def _mask(layers, name="m", experts=6):
    return Mask(model="tiny-moe", num_experts=experts, criterion=name, sources=[], layers=layers)


@pytest.fixture
def datasets(tmp_path):
    a = make_bundle(tmp_path / "a.safetensors", n=5, layers=2, experts=6, seed=3)
    b = make_bundle(tmp_path / "b.safetensors", n=4, layers=2, experts=6, seed=4)
    return [load_bundle(a), load_bundle(b)]


def test_jaccard_and_retained_mass_per_layer_match_naive_sets(datasets):
    masks = [
        _mask([[0, 1, 2], [3, 4, 5]], "x"),
        _mask([[1, 2, 3, 4], [0, 5]], "y"),  # uneven, as a global budget gives
        _mask([[5, 0], [1, 2]], "z"),
    ]
    result = compare_masks(masks, datasets)
    assert result.jaccard.shape == (2, 3, 3) and result.retained.shape == (2, 3, 2)
    signatures = [
        ref.signature(b.prob_sum.tolist(), b.token_count.tolist(), range(b.num_samples))
        for b in datasets
    ]
    for layer in range(2):
        for i, a in enumerate(masks):
            for j, b in enumerate(masks):
                sa, sb = set(a.layers[layer]), set(b.layers[layer])
                assert result.jaccard[layer, i, j] == pytest.approx(len(sa & sb) / len(sa | sb))
            for d, p in enumerate(signatures):
                kept = sum(p[layer][e] for e in a.layers[layer])
                assert result.retained[layer, i, d] == pytest.approx(kept)
    # hand-worked: x vs y, layer 0: {1,2} of {0,1,2,3,4} = 0.4; layer 1: {5} of {0,3,4,5} = 0.25
    assert result.jaccard_mean[0, 1] == pytest.approx((0.4 + 0.25) / 2)
    assert result.retained_mean[0, 1] == pytest.approx(result.retained[:, 0, 1].mean())


def test_to_json_is_plain_and_complete(datasets):
    masks = [_mask([[0, 1], [2, 3]], "x"), _mask([[0, 1], [2, 3]], "x")]
    doc = compare_masks(masks, datasets).to_json()
    json.dumps(doc, allow_nan=False)
    assert [m["name"] for m in doc["masks"]] == ["x", "x#2"]
    assert doc["jaccard"]["mean"] == [[1.0, 1.0], [1.0, 1.0]]
    assert len(doc["jaccard"]["layers"]) == 2 and len(doc["retained_mass"]["layers"][0]) == 2
    assert [d["name"] for d in doc["datasets"]] == ["a", "b"]
    assert doc["masks"][0]["kept_per_layer"] == [2, 2] and doc["num_experts"] == 6


def test_masks_from_criteria_one_per_bundle_and_one_coverage(datasets):
    masks = masks_for_criteria(["mass", "energy", "coverage"], datasets, r=3)
    assert [m.criterion for m in masks] == ["mass", "mass", "energy", "energy", "coverage"]
    assert masks[0].layers == make_mask("mass", [datasets[0]], r=3).layers
    assert masks[4].sources == [str(b.path) for b in datasets]
    result = compare_masks(masks, datasets)
    # the mass mask of a dataset keeps the most of that dataset's mass among r-expert masks
    assert result.retained_mean[0, 0] >= result.retained_mean[1, 0] - 1e-12
    assert result.retained_mean[1, 1] >= result.retained_mean[0, 1] - 1e-12


def test_incompatible_masks_and_bundles_are_refused(datasets, tmp_path):
    with pytest.raises(LensError, match="masks must be for the same model"):
        compare_masks([_mask([[0, 1], [2, 3]]), _mask([[0, 1], [2, 3]], experts=8)])
    with pytest.raises(LensError, match="must come from the masks' model"):
        compare_masks([_mask([[0, 1], [2, 3]], experts=8)], datasets)
    with pytest.raises(LensError, match="at least one mask"):
        compare_masks([], datasets)


def test_without_datasets_there_is_no_retained_mass():
    result = compare_masks([_mask([[0, 1], [2, 3]]), _mask([[0, 2], [2, 3]])])
    assert result.retained.shape == (2, 2, 0)
    assert np.allclose(result.jaccard_mean, [[1, (1 / 3 + 1) / 2], [(1 / 3 + 1) / 2, 1]])
