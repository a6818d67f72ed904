"""Hand-made hostile files: safetensors with edited headers or values, masks, evaluations.

Each maker writes one damaged file from a valid one, changing exactly one thing,
so a refusal proves the reader checks that thing. safetensors files are written
byte by byte (the library refuses to write most of these).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.io.safetensors import read_header


def header_and_data(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's header (``__metadata__`` included) and its data bytes."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_raw(
    path: Path, header: object | bytes, data: bytes, *, length: int | None = None
) -> Path:
    """Write a header (a JSON value, or raw bytes) and data as a safetensors file."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def edit_header(good: Path, out: Path, edit: Callable[[dict], object]) -> Path:
    """``good`` with its header changed by ``edit`` (which may return a replacement)."""
    header, data = header_and_data(good)
    replaced = edit(header)
    return write_raw(out, header if replaced is None else replaced, data)


def edit_tensor(good: Path, out: Path, name: str, edit: Callable[[np.ndarray], None]) -> Path:
    """``good`` with tensor ``name``'s values changed in place by ``edit`` (same header)."""
    entry = read_header(good).tensors[name]
    dtypes = {"F32": np.float32, "I64": np.int64, "I32": np.int32}
    raw = bytearray(good.read_bytes())
    values = np.frombuffer(raw, dtype=dtypes[entry.dtype], count=entry.nbytes // 4 if
                           entry.dtype in ("F32", "I32") else entry.nbytes // 8,
                           offset=entry.start).reshape(entry.shape).copy()  # fmt: skip
    edit(values)
    raw[entry.start : entry.end] = values.tobytes()
    out.write_bytes(bytes(raw))
    return out


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def edit_json(good: Path, out: Path, edit: Callable[[dict], object]) -> Path:
    doc = json.loads(good.read_text())
    replaced = edit(doc)
    out.write_text(json.dumps(doc if replaced is None else replaced))
    return out
