"""AIMER: calibration-free expert scores from a checkpoint's weights, read lazily.

For expert e of a MoE layer, θ_e is the concatenation of its weight tensors
(gate/up/down projections; biases are not weights and are left out). The
score is −mean|θ_e| / sqrt(mean θ_e²): the ratio is highest for experts whose
weights are spread evenly, which AIMER prunes first, so higher scores are kept.

Weights are streamed from the safetensors files in bounded chunks with
``os.pread`` (no torch, no whole-shard reads): float32/float16/bfloat16/float64
directly, GPT-OSS MXFP4 (``*_blocks`` + ``*_scales``) from the FP4 values and
the shared power-of-two scale of each 32-value block, since the two sums need
only the multiset of values, not their layout. FP8 and other quantised
weights are refused with a clear message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import LensError
from core.families import BY_MODEL_TYPE
from core.families.layouts import IdentityExperts
from core.io.safetensors import COPY_CHUNK, TensorEntry
from core.masks.criteria import AimerScores
from core.prune.checkpoint import Checkpoint, MoeLayer, read_config

#: The 16 FP4 (e2m1) values of MXFP4, indexed by nibble (as in GPT-OSS and transformers).
FP4_VALUES = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
)
_BYTE = np.arange(256)
_ABS_BY_BYTE = np.abs(FP4_VALUES[_BYTE & 0x0F]) + np.abs(FP4_VALUES[_BYTE >> 4])
_SQ_BY_BYTE = FP4_VALUES[_BYTE & 0x0F] ** 2 + FP4_VALUES[_BYTE >> 4] ** 2
_FLOAT_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


@dataclass(frozen=True)
class AimerResult:
    scores: np.ndarray  # [L, E], higher kept
    ratio: np.ndarray  # [L, E], mean|θ| / sqrt(mean θ²)
    weights: list[str]  # the expert tensor names (per layer 0) the scores were read from


def aimer_scores(model: str | Path | Checkpoint) -> AimerResult:
    """AIMER scores of every expert of every MoE layer of ``model`` (folder or hub id)."""
    ckpt = model if isinstance(model, Checkpoint) else Checkpoint.open(model)
    if isinstance(ckpt.layout, IdentityExperts):
        raise LensError(
            f"{ckpt.folder}: aimer scores experts by their weights, and this model's router also "
            f"scores {ckpt.layout.label} that have none; use a calibration criterion (a bundle)"
        )
    num_layers, num_experts = len(ckpt.layers), ckpt.num_experts
    abs_sum = np.zeros((num_layers, num_experts))
    sq_sum = np.zeros((num_layers, num_experts))
    count = np.zeros((num_layers, num_experts))
    names: list[str] = []
    with _Reader() as reader:
        for i, layer in enumerate(ckpt.layers):
            used = _accumulate_layer(layer, reader, abs_sum[i], sq_sum[i], count[i])
            if i == 0:
                names = used
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (abs_sum / count) / np.sqrt(sq_sum / count)
    ratio = np.where(sq_sum > 0, ratio, 1.0)  # an all-zero expert is pruned first
    return AimerResult(scores=-ratio, ratio=ratio, weights=names)


def aimer_checkpoint_scores(model: str | Path) -> AimerScores:
    """What the ``aimer`` mask criterion needs of a checkpoint: its scores, name and top-k.

    Masks (:mod:`core.masks`) never read weights; the CLI and scripts call this
    and pass the result to :func:`core.masks.make.make_mask`.
    """
    scores = aimer_scores(model).scores
    config = read_config(model)
    top_k = config.get("num_experts_per_tok")
    valid = isinstance(top_k, int) and not isinstance(top_k, bool)
    family = BY_MODEL_TYPE.get(str(config.get("model_type")))
    hashed = Checkpoint.open(model).hash_routed_layers(family)  # headers only
    return AimerScores(
        model=str(model),
        scores=scores,
        top_k=top_k if valid else None,
        hash_routed_layers=tuple(hashed),
    )


def _accumulate_layer(
    layer: MoeLayer, reader: _Reader, abs_sum: np.ndarray, sq_sum: np.ndarray, count: np.ndarray
) -> list[str]:
    used = []
    for kind, entry, scales in _weights(layer.fused):
        used.append(entry.name)
        for e in range(entry.shape[0]):
            stats = _expert_stats(reader, kind, entry, scales, e)
            abs_sum[e] += stats[0]
            sq_sum[e] += stats[1]
            count[e] += stats[2]
    for e, tensors in sorted(layer.per_expert.items()):
        for kind, entry, scales in _weights(tensors):
            if e == 0:
                used.append(entry.name)
            stats = _expert_stats(reader, kind, entry, scales, None)
            abs_sum[e] += stats[0]
            sq_sum[e] += stats[1]
            count[e] += stats[2]
    if not np.all(count > 0):
        raise LensError(f"layer {layer.index}: found no expert weights to score with aimer")
    return used


def _weights(tensors: dict[str, TensorEntry]):
    """(kind, entry, scales entry) for each weight tensor: kind is "float" or "mxfp4"."""
    for leaf, entry in sorted(tensors.items()):
        if leaf.endswith("bias"):
            continue
        if leaf.endswith("_blocks") and leaf[: -len("_blocks")] + "_scales" in tensors:
            yield "mxfp4", entry, tensors[leaf[: -len("_blocks")] + "_scales"]
        elif leaf.endswith("_scales") and leaf[: -len("_scales")] + "_blocks" in tensors:
            continue
        elif entry.dtype in _FLOAT_DTYPES:
            yield "float", entry, None
        else:
            raise LensError(
                f"{entry.file}: aimer cannot read expert tensor {entry.name} ({entry.dtype}); it "
                "needs float or MXFP4 expert weights (dequantize FP8 checkpoints first)"
            )


def _expert_stats(
    reader: _Reader, kind: str, entry: TensorEntry, scales: TensorEntry | None, expert: int | None
) -> tuple[float, float, float]:
    """(Σ|θ|, Σθ², count) of one expert's part of ``entry`` (all of it when ``expert`` is None)."""
    if kind == "mxfp4":
        assert scales is not None
        return _mxfp4_stats(reader, entry, scales, expert)
    size = entry.nbytes if expert is None else entry.row_bytes()
    base = entry.start + (0 if expert is None else expert * size)
    dtype = _FLOAT_DTYPES[entry.dtype]
    step = COPY_CHUNK - COPY_CHUNK % 8
    total_abs = total_sq = 0.0
    n = 0
    for offset in range(0, size, step):
        raw = reader.read(entry.file, base + offset, min(step, size - offset))
        values = np.frombuffer(raw, dtype=dtype)
        if entry.dtype == "BF16":
            values = (values.astype(np.uint32) << 16).view(np.float32)
        values = values.astype(np.float64)
        total_abs += float(np.abs(values).sum())
        total_sq += float(np.dot(values, values))
        n += values.size
    return total_abs, total_sq, float(n)


def _mxfp4_stats(
    reader: _Reader, blocks: TensorEntry, scales: TensorEntry, expert: int | None
) -> tuple[float, float, float]:
    block_bytes = blocks.nbytes if expert is None else blocks.row_bytes()
    scale_bytes = scales.nbytes if expert is None else scales.row_bytes()
    if block_bytes != 16 * scale_bytes or blocks.shape[-1] != 16:
        raise LensError(f"{blocks.file}: {blocks.name} and its scales do not pair as MXFP4")
    block_base = blocks.start + (0 if expert is None else expert * block_bytes)
    scale_base = scales.start + (0 if expert is None else expert * scale_bytes)
    groups_per_chunk = COPY_CHUNK // 16
    total_abs = total_sq = 0.0
    for first in range(0, scale_bytes, groups_per_chunk):
        k = min(groups_per_chunk, scale_bytes - first)
        packed = np.frombuffer(reader.read(blocks.file, block_base + 16 * first, 16 * k), np.uint8)
        exponent = (
            np.frombuffer(reader.read(scales.file, scale_base + first, k), np.uint8).astype(
                np.int64
            )
            - 127
        )
        packed = packed.reshape(k, 16)
        total_abs += float(np.ldexp(_ABS_BY_BYTE[packed].sum(axis=1), exponent).sum())
        total_sq += float(np.ldexp(_SQ_BY_BYTE[packed].sum(axis=1), 2 * exponent).sum())
    return total_abs, total_sq, float(32 * scale_bytes)


class _Reader:
    """Positional reads from a few files, each opened once."""

    def __init__(self) -> None:
        self.files: dict[Path, int] = {}

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.files.values():
            os.close(fd)

    def read(self, path: Path, offset: int, length: int) -> bytes:
        fd = self.files.get(path)
        if fd is None:
            fd = self.files[path] = os.open(path, os.O_RDONLY)
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise LensError(f"{path}: ended early (truncated while reading)")
        return data
