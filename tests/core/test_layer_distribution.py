"""core.engine.layer_distribution: one layer's P_l(A), P_l(B) and top-r masks, against naive loops."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import Profile, layer_distribution
from core.errors import LensError
from core.formats.bundle import load_bundle
from tests.conftest import make_bundle
from tests.core import reference as ref


def _naive(path, layer, r):
    bundle = load_bundle(path)
    p = ref.signature(bundle.prob_sum, bundle.token_count, range(bundle.num_samples))[layer]
    return p, ref.top_r(p, r)


@pytest.mark.parametrize("layer,r", [(0, 1), (1, 3), (2, 8)])
def test_layer_distribution_matches_naive_signature_and_masks(tmp_path, layer, r):
    pa = make_bundle(tmp_path / "a.safetensors", n=9, seed=3)
    pb = make_bundle(tmp_path / "b.safetensors", n=5, seed=4)
    dist = layer_distribution(Profile.load(pa), Profile.load(pb), layer, r)
    p, kept_a = _naive(pa, layer, r)
    q, kept_b = _naive(pb, layer, r)
    assert dist.layer == layer and dist.r == r
    np.testing.assert_allclose(dist.prob_a, p, rtol=1e-12)
    np.testing.assert_allclose(dist.prob_b, q, rtol=1e-12)
    assert set(np.flatnonzero(dist.kept_a).tolist()) == kept_a
    assert set(np.flatnonzero(dist.kept_b).tolist()) == kept_b


def test_layer_distribution_ties_go_to_the_lower_expert(tmp_path):
    flat = np.ones((2, 1, 4), dtype=np.float32) * 1.25  # 5 tokens over 4 experts
    pa = make_bundle(
        tmp_path / "a.safetensors",
        n=2,
        layers=1,
        experts=4,
        prob_sum=flat,
        token_count=np.array([5, 5]),
    )
    dist = layer_distribution(Profile.load(pa), Profile.load(pa), 0, 2)
    assert dist.kept_a.tolist() == [True, True, False, False]


def test_layer_distribution_refuses_bad_layers_budgets_and_models(tmp_path):
    a = Profile.load(make_bundle(tmp_path / "a.safetensors", layers=3, experts=8))
    other = Profile.load(make_bundle(tmp_path / "o.safetensors", layers=3, experts=6))
    with pytest.raises(LensError, match="layer 3 is outside 0..2"):
        layer_distribution(a, a, 3, 2)
    with pytest.raises(LensError, match="r=9 is outside 1..8"):
        layer_distribution(a, a, 0, 9)
    with pytest.raises(LensError, match="same model"):
        layer_distribution(a, other, 0, 2)
