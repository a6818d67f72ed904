"""Byte-level safetensors reading and writing for checkpoint surgery.

A safetensors file is an 8-byte little-endian header length, a JSON header
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}}`` plus an optional
``__metadata__`` string map), then the raw row-major tensor bytes. Slicing dim
0 of a row-major tensor is a choice of contiguous byte slabs, so pruning never
needs to decode a tensor, knows nothing about dtypes (bfloat16, FP8 and MXFP4
blocks are just bytes) and never holds more than one copy buffer in memory:
:func:`write_safetensors` streams every output tensor from byte ranges of the
input files (``os.pread``) into the new file.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import LensError
from core.formats.bundle import _current_umask, _fsync_dir, read_safetensors_header

COPY_CHUNK = 16 * 1024 * 1024

#: Bytes per element of the dtypes whose values we may need to synthesise or order by.
ITEMSIZE = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor's bytes lie: ``file`` bytes ``[start, end)`` (absolute offsets)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    def row_bytes(self) -> int:
        """Bytes of one index of dim 0 (one expert of a fused ``[E, ...]`` tensor)."""
        if not self.shape or self.shape[0] == 0 or self.nbytes % self.shape[0]:
            raise LensError(f"{self.file}: tensor {self.name} cannot be sliced along dim 0")
        return self.nbytes // self.shape[0]


@dataclass(frozen=True)
class ShardHeader:
    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]


def read_header(path: str | os.PathLike[str]) -> ShardHeader:
    """Parse a safetensors header; every problem is one :class:`LensError` naming the file."""
    path = Path(path)
    metadata, entries = read_safetensors_header(path)
    size = path.stat().st_size
    tensors = {}
    for name, entry in entries.items():
        if entry.end > size:
            raise LensError(f"{path}: truncated (tensor {name!r} runs past the end of the file)")
        tensors[name] = TensorEntry(name, entry.dtype, entry.shape, path, entry.begin, entry.end)
    return ShardHeader(path, metadata, tensors)


# --------------------------------------------------------------------------- output tensors


@dataclass(frozen=True)
class Piece:
    """A run of output bytes: ``length`` bytes of ``file`` from ``offset``, or (``file`` None)
    the literal ``data`` repeated to fill ``length``."""

    length: int
    file: Path | None = None
    offset: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class OutTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    pieces: tuple[Piece, ...]

    @property
    def nbytes(self) -> int:
        return sum(p.length for p in self.pieces)


def copy_piece(entry: TensorEntry, start: int = 0, length: int | None = None) -> Piece:
    """Bytes ``[start, start + length)`` of ``entry``'s data."""
    length = entry.nbytes - start if length is None else length
    return Piece(length, entry.file, entry.start + start)


def fill_piece(value: bytes, count: int) -> Piece:
    """``value`` repeated ``count`` times."""
    return Piece(len(value) * count, data=value)


def rows_pieces(entry: TensorEntry, rows: list[int]) -> list[Piece]:
    """Pieces for ``entry[rows]`` along dim 0, merging consecutive rows into one copy."""
    size = entry.row_bytes()
    pieces: list[Piece] = []
    run_start = prev = None
    for row in [*rows, None]:
        if row is not None and prev is not None and row == prev + 1:
            prev = row
            continue
        if run_start is not None:
            assert prev is not None
            pieces.append(copy_piece(entry, run_start * size, (prev - run_start + 1) * size))
        run_start = prev = row
    return pieces


def write_safetensors(
    path: Path,
    tensors: list[OutTensor],
    metadata: dict[str, str],
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Write ``tensors`` to ``path`` atomically, streaming their bytes; returns the file size.

    Tensors are laid out by descending element size, then name, so every
    tensor starts at an offset aligned to its element size.
    """
    order = sorted(tensors, key=lambda t: (-ITEMSIZE.get(t.dtype, 0), t.name))
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for tensor in order:
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with atomic_file(path) as out, _open_files() as files:
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for tensor in order:
            for piece in tensor.pieces:
                _write_piece(out, piece, files, on_bytes)
    return 8 + len(raw) + offset


def _write_piece(
    out: BinaryIO,
    piece: Piece,
    files: dict[Path, int],
    on_bytes: Callable[[int], None] | None,
) -> None:
    if piece.file is None:
        if not piece.data:
            return
        count = piece.length // len(piece.data)
        per_chunk = max(1, COPY_CHUNK // len(piece.data))
        while count > 0:
            n = min(count, per_chunk)
            out.write(piece.data * n)
            count -= n
            if on_bytes:
                on_bytes(n * len(piece.data))
        return
    fd = files.get(piece.file)
    if fd is None:
        fd = files[piece.file] = os.open(piece.file, os.O_RDONLY)
    done = 0
    while done < piece.length:
        chunk = os.pread(fd, min(COPY_CHUNK, piece.length - done), piece.offset + done)
        if not chunk:
            raise LensError(f"{piece.file}: ended early (truncated while reading)")
        out.write(chunk)
        done += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))


@contextmanager
def _open_files() -> Iterator[dict[Path, int]]:
    files: dict[Path, int] = {}
    try:
        yield files
    finally:
        for fd in files.values():
            os.close(fd)


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only once it is complete (fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
