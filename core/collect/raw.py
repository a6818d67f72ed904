"""Raw per-token shards (``--keep-raw``) and indexing them back into a bundle (``lens index``).

The paper keeps, per MoE layer, shard files ``layerXXX_shardYYY`` of batch
records: ``example_ids`` [B], ``ntokens`` [B] and ``routing_probs`` [B, S, E]
in bfloat16 with padded positions zeroed. We write one record per shard as
safetensors (plus each sample's other sums as [B, E] tensors, so indexing
can restore every statistic, and the run's metadata). Indexing reads ours
and the paper's ``.pt`` shards (``torch.load(weights_only=True)`` only; a
file that needs full unpickling is refused).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import LensError
from core.formats.bundle import (
    OPTIONAL_TENSORS,
    REQUIRED_METADATA,
    BundleError,
    bundle_metadata,
    write_bundle,
)
from core.io.atomic import atomic_write_bytes
from core.io.safetensors import bfloat16_to_float32, read_safetensors

SHARD_PATTERN = re.compile(r"^layer(\d+)_shard(\d+)\.(safetensors|pt)$")


def shard_name(layer: int, shard: int) -> str:
    return f"layer{layer:03d}_shard{shard:05d}.safetensors"


def list_shards(folder: Path) -> list[tuple[int, int, Path]]:
    """``(layer, shard, path)`` for every shard file in ``folder``, sorted."""
    found = []
    for path in folder.iterdir():
        match = SHARD_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found)


def next_shard_number(folder: Path) -> int:
    shards = list_shards(folder) if folder.is_dir() else []
    return 1 + max((shard for _, shard, _ in shards), default=-1)


def write_raw_shard(
    folder: Path,
    layer: int,
    shard: int,
    *,
    example_ids: np.ndarray,
    ntokens: np.ndarray,
    routing_probs: object,
    sums: dict[str, np.ndarray],
    metadata: dict[str, str],
) -> Path:
    """One layer's record for one batch; ``routing_probs`` is a bfloat16 torch tensor."""
    import torch  # lazy: optional dependency (the collect extra)
    from safetensors.torch import save  # lazy: its torch half needs torch

    tensors = {
        "example_ids": torch.from_numpy(np.ascontiguousarray(example_ids, dtype=np.int64)),
        "ntokens": torch.from_numpy(np.ascontiguousarray(ntokens, dtype=np.int64)),
        "routing_probs": routing_probs.contiguous(),
    }
    for name, array in sums.items():
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array))
    path = folder / shard_name(layer, shard)
    atomic_write_bytes(path, save(tensors, metadata={**metadata, "layer": str(layer)}))
    return path


def drop_unfinished_shards(folder: Path, done: set[int]) -> int:
    """Delete shards holding samples that the resumable state does not count as done."""
    if not folder.is_dir():
        return 0
    removed = 0
    for _, _, path in list_shards(folder):
        if path.suffix != ".safetensors":
            continue
        try:
            _, tensors = read_safetensors(path)
            ids = np.asarray(tensors["example_ids"]).tolist()
        except (BundleError, KeyError):
            ids = None
        if ids is None or not set(ids) <= done:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# --------------------------------------------------------------------------- indexing


@dataclass
class _Record:
    example_ids: np.ndarray
    ntokens: np.ndarray
    prob_sum: np.ndarray  # [B, E] float64
    sums: dict[str, np.ndarray]  # optional [B, E]


def _records(path: Path) -> Iterator[tuple[_Record, dict[str, str]]]:
    if path.suffix == ".pt":
        for record in _load_pt_records(path):
            yield _to_record(path, record), {}
        return
    metadata, tensors = read_safetensors(path)
    yield _to_record(path, tensors), metadata


def _to_record(path: Path, record: dict) -> _Record:
    for key in ("example_ids", "ntokens", "routing_probs"):
        if key not in record:
            raise LensError(f"{path}: shard record lacks {key!r}")
    probs = np.asarray(record["routing_probs"])
    if probs.dtype == np.uint16:  # raw bfloat16 bits from our reader
        probs = bfloat16_to_float32(probs)
    if probs.ndim != 3:
        raise LensError(f"{path}: routing_probs has shape {list(probs.shape)}, expected [B, S, E]")
    ids = np.asarray(record["example_ids"]).reshape(-1).astype(np.int64)
    ntokens = np.asarray(record["ntokens"]).reshape(-1).astype(np.int64)
    if not len(ids) == len(ntokens) == probs.shape[0]:
        raise LensError(f"{path}: example_ids, ntokens and routing_probs disagree on B")
    sums = {}
    for name in OPTIONAL_TENSORS:
        if name in record:
            sums[name] = np.asarray(record[name], dtype=np.float64).reshape(len(ids), -1)
    prob_sum = np.add.reduce(probs, axis=1, dtype=np.float64)
    return _Record(ids, ntokens, prob_sum, sums)


def _load_pt_records(path: Path) -> list[dict]:
    try:
        import torch  # lazy: optional dependency (the collect extra)
    except ImportError:
        raise LensError(f"{path}: reading .pt shards needs torch") from None
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise LensError(
            f"{path}: refused: not loadable with weights_only=True; only plain tensor records are accepted"
        ) from None
    except Exception as exc:
        raise LensError(f"{path}: not a readable torch file ({type(exc).__name__})") from None
    records = obj if isinstance(obj, list) else [obj]
    out = []
    for record in records:
        if not isinstance(record, dict):
            raise LensError(f"{path}: expected a list of dict records")
        out.append(
            {
                k: (v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy())
                for k, v in record.items()
                if isinstance(v, torch.Tensor)
            }
        )
    return out


def index_raw(
    folder: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    dataset: str | None = None,
    top_k: int | None = None,
) -> Path:
    """Compile a folder of raw shards into a bundle (prob_sum, and any per-sample sums kept)."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise LensError(f"{folder}: no such folder of raw shards")
    shards = list_shards(folder)
    if not shards:
        raise LensError(f"{folder}: no layerXXX_shardYYY.safetensors or .pt files")
    layer_ids = sorted({layer for layer, _, _ in shards})
    if layer_ids != list(range(len(layer_ids))):
        raise LensError(f"{folder}: layers {layer_ids} are not numbered 0..{len(layer_ids) - 1}")
    per_layer: list[dict[int, tuple[int, np.ndarray, dict[str, np.ndarray]]]] = [
        {} for _ in layer_ids
    ]
    metadata: dict[str, str] = {}
    num_experts = None
    for layer, _, path in shards:
        for record, meta in _records(path):
            metadata = metadata or meta
            if num_experts is None:
                num_experts = record.prob_sum.shape[1]
            elif record.prob_sum.shape[1] != num_experts:
                raise LensError(
                    f"{path}: has {record.prob_sum.shape[1]} experts, not {num_experts}"
                )
            rows = per_layer[layer]
            for b, example_id in enumerate(record.example_ids.tolist()):
                if example_id in rows:
                    raise LensError(
                        f"{path}: example id {example_id} appears twice in layer {layer}"
                    )
                sums = {name: values[b] for name, values in record.sums.items()}
                rows[example_id] = (int(record.ntokens[b]), record.prob_sum[b], sums)
    ids = sorted(per_layer[0])
    for layer, rows in enumerate(per_layer):
        if sorted(rows) != ids:
            raise LensError(
                f"{folder}: layer {layer} holds different samples than layer 0 "
                f"({len(rows)} vs {len(ids)}); some shards are missing"
            )
    n, num_layers = len(ids), len(per_layer)
    token_count = np.array([per_layer[0][i][0] for i in ids], dtype=np.int64)
    prob_sum = np.zeros((n, num_layers, num_experts), dtype=np.float64)
    # Statistics beyond prob_sum are kept only if every layer's records carry them.
    optional = set.intersection(*(set(rows[ids[0]][2]) for rows in per_layer))
    extra = {name: np.zeros_like(prob_sum) for name in optional}
    for layer, rows in enumerate(per_layer):
        for row, example_id in enumerate(ids):
            _, probs, sums = rows[example_id]
            prob_sum[row, layer] = probs
            for name in optional:
                extra[name][row, layer] = sums[name]
    tensors = {
        "prob_sum": prob_sum,
        "token_count": token_count,
        "example_ids": np.array(ids, dtype=np.int64),
    }
    for name, values in extra.items():
        tensors[name] = np.rint(values) if OPTIONAL_TENSORS[name].kind == "i" else values
    keep = {k: v for k, v in metadata.items() if k not in (*REQUIRED_METADATA, "layer")}
    meta = bundle_metadata(
        **{
            **keep,
            "model": model or metadata.get("model", "unknown"),
            "dataset": dataset or metadata.get("dataset", folder.name),
            "num_layers": num_layers,
            "num_experts": num_experts,
            "top_k": top_k if top_k is not None else int(metadata.get("top_k", 0)),
            "indexed_from": str(folder),
            "raw_shards": json.dumps(len(shards)),
        }
    )
    return write_bundle(out, tensors, meta)
