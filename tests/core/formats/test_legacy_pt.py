"""The paper's derived_stats.pt: loaded weights-only, never unpickled, cast to bundle dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import BundleError
from core.formats.bundle import FORMAT, load_bundle

torch = pytest.importorskip("torch")


def test_legacy_pt_loads_weights_only(tmp_path):
    rng = np.random.default_rng(0)
    prob = rng.random((4, 3, 6))
    tokens = np.array([3, 4, 5, 6])
    prob = (prob / prob.sum(axis=2, keepdims=True) * tokens[:, None, None]).astype(np.float32)
    path = tmp_path / "derived_stats.pt"
    torch.save(
        {
            "prob_sum": torch.from_numpy(prob),
            "token_count": torch.from_numpy(tokens),
            "energy_sum": torch.from_numpy(prob * 2),
        },
        path,
    )
    bundle = load_bundle(path)
    assert (bundle.num_samples, bundle.num_layers, bundle.num_experts) == (4, 3, 6)
    np.testing.assert_array_equal(bundle.prob_sum, prob)
    np.testing.assert_array_equal(bundle.example_ids, np.arange(4))
    np.testing.assert_array_equal(bundle.get("energy_sum"), prob * 2)
    assert bundle.top_k is None
    assert bundle.metadata["format"] == FORMAT and bundle.metadata["dataset"] == tmp_path.name
    assert bundle.metadata["source_format"] == "derived_stats.pt"
    assert bundle.prob_sum.dtype == np.float32 and bundle.token_count.dtype == np.int64


class _Evil:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_legacy_pt_needing_full_unpickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "derived_stats.pt"
    torch.save(
        {"prob_sum": torch.ones(2, 2, 2), "token_count": torch.ones(2), "x": _Evil(str(marker))},
        path,
    )
    assert not marker.exists()
    with pytest.raises(BundleError, match="refused"):
        load_bundle(path)
    assert not marker.exists()


def test_legacy_pt_garbage(tmp_path):
    path = tmp_path / "derived_stats.pt"
    path.write_bytes(b"garbage" * 20)
    with pytest.raises(BundleError, match="not a readable torch file|refused"):
        load_bundle(path)
