"""lens merge: concatenation, ordering, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import LensError
from core.formats.bundle import bundle_metadata, load_bundle, write_bundle
from core.merge import merge_bundles
from tests.conftest import make_bundle, routing_sums


def _part(path, ids, *, seed, dataset="c4", model="m", experts=8, energy=True):
    rng = np.random.default_rng(seed)
    n = len(ids)
    tokens = rng.integers(1, 20, size=n)
    tensors = {
        "prob_sum": routing_sums(rng, tokens, 2, experts),
        "token_count": tokens,
        "example_ids": np.asarray(ids, dtype=np.int64),
    }
    if energy:
        tensors["energy_sum"] = rng.random((n, 2, experts)).astype(np.float32)
    meta = bundle_metadata(model=model, dataset=dataset, num_layers=2, num_experts=experts, top_k=2)
    return write_bundle(path, tensors, meta)


def test_merge_sorts_by_example_id_and_keeps_rows(tmp_path):
    a = _part(tmp_path / "a.safetensors", [4, 0, 2], seed=1)
    b = _part(tmp_path / "b.safetensors", [3, 1], seed=2)
    out = merge_bundles([a, b], tmp_path / "m.safetensors")
    merged = load_bundle(out.path)
    assert merged.example_ids.tolist() == [0, 1, 2, 3, 4]
    assert merged.dataset == "c4" and out.samples == 5 and out.dropped_statistics == []
    parts = [load_bundle(a), load_bundle(b)]
    rows = {}
    for part in parts:
        for i, ex in enumerate(part.example_ids.tolist()):
            rows[ex] = (part.prob_sum[i], part.token_count[i], part.get("energy_sum")[i])
    for i, ex in enumerate(merged.example_ids.tolist()):
        np.testing.assert_array_equal(merged.prob_sum[i], rows[ex][0])
        assert merged.token_count[i] == rows[ex][1]
        np.testing.assert_array_equal(merged.get("energy_sum")[i], rows[ex][2])
    assert "merged_from" in merged.metadata


def test_duplicates_refused_unless_allowed(tmp_path):
    a = _part(tmp_path / "a.safetensors", [0, 1, 2], seed=1)
    b = _part(tmp_path / "b.safetensors", [2, 3], seed=2)
    with pytest.raises(LensError, match="example id 2"):
        merge_bundles([a, b], tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
    assert merge_bundles([a, b], tmp_path / "m.safetensors", allow_duplicates=True).samples == 5


def test_different_datasets_make_a_mixed_set(tmp_path):
    a = _part(tmp_path / "a.safetensors", [1, 0], seed=1, dataset="news")
    b = _part(tmp_path / "b.safetensors", [0, 1], seed=2, dataset="wiki")
    merged = load_bundle(merge_bundles([a, b], tmp_path / "m.safetensors").path)
    assert merged.dataset == "news+wiki"
    assert merged.example_ids.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"model": "other"}, "model"), ({"experts": 16}, "num_experts")],
)
def test_other_models_refused(tmp_path, kwargs, message):
    a = _part(tmp_path / "a.safetensors", [0], seed=1)
    b = _part(tmp_path / "b.safetensors", [1], seed=2, **kwargs)
    with pytest.raises(LensError, match=message):
        merge_bundles([a, b], tmp_path / "m.safetensors")


def test_missing_statistic_is_dropped_and_reported(tmp_path):
    a = _part(tmp_path / "a.safetensors", [0], seed=1)
    b = _part(tmp_path / "b.safetensors", [1], seed=2, energy=False)
    result = merge_bundles([a, b], tmp_path / "m.safetensors")
    assert result.dropped_statistics == ["energy_sum"]
    assert not load_bundle(result.path).has("energy_sum")


def test_merge_cli(tmp_path):
    from click.testing import CliRunner

    from lens_tui.cli import cli

    make_bundle(tmp_path / "p" / "a.safetensors", seed=1)
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "merge",
            str(tmp_path / "p"),
            str(tmp_path / "p" / "a.safetensors"),
            "--out",
            str(tmp_path / "m.safetensors"),
        ],
    )
    assert res.exit_code == 1
    assert "allow-duplicates" in res.output
