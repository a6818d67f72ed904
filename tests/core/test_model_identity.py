"""Bundles of different models are refused even when their shapes agree."""

from __future__ import annotations

import pytest

from core.engine import Profile, check_compatible, compare
from core.errors import LensError
from core.formats.mask import Mask
from core.masks.compare import compare_masks
from core.matrix import matrix
from tests.conftest import make_bundle


def _profile(path, model, seed=0):
    return Profile.load(make_bundle(path, layers=3, experts=8, model=model, seed=seed))


def test_same_shape_other_model_is_refused_everywhere(tmp_path):
    a = _profile(tmp_path / "a.safetensors", "org/model-a")
    b = _profile(tmp_path / "b.safetensors", "org/model-b", seed=1)
    with pytest.raises(LensError, match="model-b.*model-a.*same model"):
        check_compatible([a, b])
    with pytest.raises(LensError, match="same model"):
        compare(a, b, 2)
    with pytest.raises(LensError, match="same model"):
        matrix([a, b], 2)
    mask = Mask(model="org/model-a", num_experts=8, criterion="t", sources=[], layers=[[0, 1]] * 3)
    with pytest.raises(LensError, match="same model"):
        compare_masks([mask], [a, b])
    with pytest.raises(LensError, match="model-b"):
        compare_masks([mask], [b])


def test_one_model_under_several_spellings_is_accepted(tmp_path):
    a = _profile(tmp_path / "a.safetensors", "openai/gpt-oss-20b")
    b = _profile(tmp_path / "b.safetensors", "/data/models/GPT-OSS-20B/", seed=1)
    c = _profile(
        tmp_path / "c.safetensors",
        "/root/.cache/huggingface/hub/models--openai--gpt-oss-20b/snapshots/abc",
        seed=2,
    )
    check_compatible([a, b, c])
    assert compare(a, b, 2).layers["jaccard"].shape == (3,)
