"""Finding a bundle's own data file again (core.textdata.recorded_data_file) and one sample's
routing against its dataset's (core.samples.sample_layer), for the Samples and Design views."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core.engine import Profile
from core.errors import LensError
from core.samples import sample_layer
from core.textdata import recorded_data_file
from tests.conftest import make_bundle


def test_a_relative_data_path_is_found_from_the_checkout_the_bundle_was_written_in(tmp_path):
    checkout = tmp_path / "checkout"
    data = checkout / "corpora" / "wiki.jsonl"
    data.parent.mkdir(parents=True)
    data.write_text('{"text": "a"}\n')
    bundle = checkout / "stats" / "wiki.safetensors"
    meta = {
        "data_source": "corpora/wiki.jsonl",
        "collect_args": json.dumps({"data": "corpora/wiki.jsonl", "out": "stats/wiki.safetensors"}),
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        assert recorded_data_file(meta, bundle) == checkout / "corpora" / "wiki.jsonl"
        # Without the recorded output path, the checkout is not known: nothing is found.
        assert recorded_data_file({"data_source": "corpora/wiki.jsonl"}, bundle) is None
        os.chdir(checkout)  # from the folder collection ran in, the path works as given
        assert recorded_data_file({"data_source": "corpora/wiki.jsonl"}, bundle) is not None
    finally:
        os.chdir(cwd)


def test_missing_files_datasets_names_and_unreadable_kinds_are_not_data_files(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    bundle = tmp_path / "b.safetensors"
    assert recorded_data_file({"data_source": str(tmp_path / "gone.jsonl")}, bundle) is None
    assert recorded_data_file({"data_source": "allenai/c4"}, bundle) is None
    assert recorded_data_file({"data_source": str(tmp_path / "notes.md")}, bundle) is None
    assert recorded_data_file({"collect_args": "not json"}, bundle) is None
    (tmp_path / "d.txt").write_text("x\n")
    assert (
        recorded_data_file({"data_source": str(tmp_path / "d.txt")}, bundle) == tmp_path / "d.txt"
    )


def test_sample_layer_is_the_samples_own_signature_against_the_datasets(tmp_path):
    path = make_bundle(tmp_path / "a.safetensors", n=9, layers=3, experts=6, seed=4)
    profile = Profile.load(path)
    prob_sum = np.asarray(profile.bundle.prob_sum, dtype=np.float64)
    tokens = np.asarray(profile.bundle.token_count)
    for index in range(9):
        dist = sample_layer(profile, index, 2, 2)
        own = [prob_sum[index, 2, e] / tokens[index] for e in range(6)]
        pooled = [sum(prob_sum[i, 2, e] for i in range(9)) / tokens.sum() for e in range(6)]
        np.testing.assert_allclose(dist.prob_a, own, rtol=1e-12)
        np.testing.assert_allclose(dist.prob_b, pooled, rtol=1e-9)
        top_own = sorted(range(6), key=lambda e: (-own[e], e))[:2]
        top_pooled = sorted(range(6), key=lambda e: (-pooled[e], e))[:2]
        assert sorted(np.flatnonzero(dist.kept_a)) == sorted(top_own)
        assert sorted(np.flatnonzero(dist.kept_b)) == sorted(top_pooled)
    with pytest.raises(LensError, match="no sample 9"):
        sample_layer(profile, 9, 0, 2)
    with pytest.raises(LensError, match="layer 3"):
        sample_layer(profile, 0, 3, 2)
