"""--keep-raw shards and `lens index`: raw per-token records compile back into the bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.collect.raw import index_raw, list_shards
from core.collect.runner import CollectConfig, run_collection
from core.errors import LensError
from core.formats.bundle import load_bundle


def test_keep_raw_then_index_rebuilds_the_bundle(tiny_model, text_file, tmp_path):
    raw = tmp_path / "raw"
    out = run_collection(
        CollectConfig.from_settings(
            model=str(tiny_model("gpt_oss")),
            data=str(text_file),
            out=tmp_path / "b.safetensors",
            max_length=24,
            batch_size=4,
            keep_raw=raw,
            padding_side="left",
        )
    )
    shards = list_shards(raw)
    assert {layer for layer, _, _ in shards} == {0, 1}
    assert len(shards) == 2 * 3  # 2 layers × ceil(10 / 4) batches
    # Padded positions are zeroed in the per-token records, as the paper's format says.
    from safetensors.torch import load_file

    record = load_file(shards[0][2])
    assert record["routing_probs"].dtype == torch.bfloat16
    per_token = record["routing_probs"].float().sum(-1)  # 1 for real tokens, 0 for padding
    real = per_token > 0.5
    assert real.sum(1).tolist() == record["ntokens"].tolist()
    assert torch.all(per_token[~real] == 0)

    rebuilt = load_bundle(index_raw(raw, tmp_path / "indexed.safetensors"))
    original = load_bundle(out)
    assert rebuilt.model == original.model and rebuilt.top_k == original.top_k
    np.testing.assert_array_equal(rebuilt.example_ids, original.example_ids)
    np.testing.assert_array_equal(rebuilt.token_count, original.token_count)
    # Per-token probabilities were stored in bfloat16: 8 bits of mantissa.
    np.testing.assert_allclose(rebuilt.prob_sum, original.prob_sum, rtol=1e-2, atol=1e-2)
    for name in ("topk_count", "weight_sum", "energy_sum", "reap_sum"):
        np.testing.assert_array_equal(rebuilt.get(name), original.get(name), name)


def _paper_shard(path: Path, ids, ntokens, probs) -> None:
    records = [
        {
            "example_ids": torch.tensor(ids),
            "ntokens": torch.tensor(ntokens),
            "routing_probs": torch.tensor(probs, dtype=torch.bfloat16),
        }
    ]
    torch.save(records, path)


def test_index_reads_the_papers_pt_shards(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(2, 3, 5))  # [layers=2, B=3, S=5, E=4]
    ntokens = [5, 3, 2]
    for b, n in enumerate(ntokens):
        probs[:, b, n:] = 0.0
    for layer in range(2):
        _paper_shard(tmp_path / f"layer{layer:03d}_shard000.pt", [7, 8, 9], ntokens, probs[layer])
    bundle = load_bundle(
        index_raw(tmp_path, tmp_path / "out.safetensors", model="paper-model", top_k=2)
    )
    assert bundle.example_ids.tolist() == [7, 8, 9]
    assert bundle.token_count.tolist() == ntokens
    assert bundle.model == "paper-model" and bundle.top_k == 2
    rounded = torch.tensor(probs, dtype=torch.bfloat16).float().numpy()
    for layer in range(2):
        for b in range(3):
            expected = [sum(rounded[layer, b, t, e] for t in range(5)) for e in range(4)]
            np.testing.assert_allclose(bundle.prob_sum[b, layer], expected, rtol=1e-6)


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pt_shard_that_needs_unpickling_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save(
        [{"example_ids": torch.tensor([0]), "x": _Evil(str(marker))}],
        tmp_path / "layer000_shard000.pt",
    )
    with pytest.raises(LensError, match="refused"):
        index_raw(tmp_path, tmp_path / "out.safetensors")
    assert not marker.exists()


def test_index_errors(tmp_path):
    with pytest.raises(LensError, match="no such folder"):
        index_raw(tmp_path / "nope", tmp_path / "o.safetensors")
    with pytest.raises(LensError, match="no layerXXX_shardYYY"):
        index_raw(tmp_path, tmp_path / "o.safetensors")
    probs = np.full((1, 2, 4), 0.25)
    _paper_shard(tmp_path / "layer000_shard000.pt", [0], [2], probs)
    _paper_shard(tmp_path / "layer001_shard000.pt", [1], [2], probs)
    with pytest.raises(LensError, match="layer 1 holds different samples"):
        index_raw(tmp_path, tmp_path / "o.safetensors")
    assert not (tmp_path / "o.safetensors").exists()
