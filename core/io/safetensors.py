"""safetensors, byte by byte: one header reader, one header writer, mmap reads, streamed writes.

A safetensors file is an 8-byte little-endian header length, a JSON header
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}}`` plus an optional
``__metadata__`` string map), then the raw row-major tensor bytes.

- Reading (:func:`map_safetensors`) memory-maps every tensor straight from the
  file as an ``np.memmap`` at its offset. ``safetensors.numpy.load_file`` would
  copy every tensor into RAM; a 20,000-sample gpt-oss-120b bundle is ~370 MB
  per statistic, so we map instead and let the engine stream the pages it needs.
- Writing (:func:`write_safetensors`) streams every output tensor from byte
  ranges of input files (``os.pread``) or repeated literal bytes into the new
  file. Slicing dim 0 of a row-major tensor is a choice of contiguous byte
  slabs, so pruning never decodes a tensor, knows nothing about dtypes
  (bfloat16, FP8 and MXFP4 blocks are just bytes) and never holds more than one
  copy buffer in memory.

Every problem with a file read is one :class:`~core.errors.BundleError` line
naming the file. numpy only.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.errors import BundleError, LensError
from core.io.atomic import atomic_file
from core.io.jsonfile import is_int, parse_json, short_repr

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

#: The safetensors dtypes numpy can map directly (bfloat16 has no numpy dtype).
NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_NAME_OF_NUMPY = {np.dtype(v).newbyteorder("<"): k for k, v in NUMPY_DTYPES.items()}
_MAX_HEADER_BYTES = 100 * 1024 * 1024


# --------------------------------------------------------------------------- the header


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor's bytes lie: ``file`` bytes ``[start, end)`` (absolute offsets)."""

    name: str
    dtype: str  # safetensors name: F32, BF16, I64, U8, ...
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
class SafetensorsHeader:
    """A parsed header: the ``__metadata__`` string map and every tensor's entry, in file order."""

    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_start: int  # 8 + header length: where tensor data begins


def read_header(path: str | os.PathLike[str], *, check_bounds: bool = True) -> SafetensorsHeader:
    """Parse and check a safetensors header against the file; dtypes are not interpreted.

    The rules are safetensors' own (``Metadata::validate`` in the Rust crate):
    every shape entry a non-negative integer, each tensor's byte range exactly
    shape × element size for the dtypes we know, ranges back to back from 0
    with no gap and no overlap (two tensors never read the same bytes), and
    ``__metadata__`` a map of strings. Every problem (empty, too short, bad
    header length, not JSON, nested too deep, malformed entry, with
    ``check_bounds`` a range past the end or bytes after the last tensor) is a
    :class:`BundleError` naming the file. :func:`map_safetensors` checks bounds
    itself, after the dtype of each entry.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise BundleError(f"{path}: empty file")
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise BundleError(f"{path}: not a safetensors file (too short)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len == 0 or header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise BundleError(
                    f"{path}: not a safetensors file (bad header length) or truncated"
                )
            raw = handle.read(header_len)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        header = parse_json(raw, str(path))
    except LensError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise BundleError(
            f"{path}: not a safetensors file (header is not JSON: {reason})"
        ) from None
    if not isinstance(header, dict):
        raise BundleError(f"{path}: not a safetensors file (header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise BundleError(f"{path}: __metadata__ is not a string map")
    data_start = 8 + header_len
    entries = {name: _entry(path, name, info, data_start) for name, info in header.items()}
    _check_layout(path, entries, data_start)
    if check_bounds:
        check_file_bounds(path, entries.values(), data_start, size)
    return SafetensorsHeader(path, dict(metadata), entries, data_start)


def _entry(path: Path, name: str, info: object, data_start: int) -> TensorEntry:
    """One header entry, checked: a dtype name, non-negative integer dims, a consistent range."""
    try:
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise BundleError(f"{path}: tensor {name!r} has a malformed header entry") from None
    if not isinstance(dtype, str):
        raise BundleError(f"{path}: tensor {name!r} has a malformed dtype {short_repr(dtype)}")
    if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
        raise BundleError(
            f"{path}: tensor {name!r} has a malformed shape {short_repr(shape)} "
            "(dims must be non-negative integers)"
        )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise BundleError(
            f"{path}: tensor {name!r} has a malformed byte range {short_repr(offsets)}"
        )
    entry = TensorEntry(
        name, dtype, tuple(shape), path, data_start + offsets[0], data_start + offsets[1]
    )
    itemsize = ITEMSIZE.get(dtype)
    if itemsize is not None and math.prod(entry.shape) * itemsize != entry.nbytes:
        raise BundleError(
            f"{path}: tensor {name!r} byte range ({entry.nbytes} bytes) does not match its "
            f"shape {short_repr(shape)} of {dtype}"
        )
    return entry


def _check_layout(path: Path, entries: dict[str, TensorEntry], data_start: int) -> None:
    """Ranges back to back from the data start: an overlap would let two tensors share bytes.

    Overlaps are looked for first, so a tensor pointed at another's bytes is
    named as such rather than by the gap it leaves behind.
    """
    ordered = sorted(entries.values(), key=lambda e: (e.start, e.end))
    for before, entry in zip(ordered, ordered[1:]):
        if entry.start < before.end:
            raise BundleError(
                f"{path}: tensors {before.name!r} and {entry.name!r} overlap (read the same bytes)"
            )
    position = data_start
    for entry in ordered:
        if entry.start != position:
            raise BundleError(
                f"{path}: tensor {entry.name!r} starts after a gap of {entry.start - position} "
                "bytes (safetensors ranges are back to back)"
            )
        position = entry.end


def check_file_bounds(
    path: Path, entries: Iterable[TensorEntry], data_start: int, size: int
) -> None:
    """Every range inside the file, and no bytes after the last one (safetensors refuses both)."""
    end = data_start
    for entry in entries:
        if entry.end > size:
            raise BundleError(
                f"{path}: truncated (tensor {entry.name!r} runs past the end of the file)"
            )
        end = max(end, entry.end)
    if end < size:
        raise BundleError(f"{path}: {size - end} bytes after the last tensor's data")


def encode_header(
    tensors: Sequence[tuple[str, str, Sequence[int], int]], metadata: dict[str, str]
) -> bytes:
    """The 8-byte length and JSON header of a file holding ``tensors`` back to back, in order.

    ``tensors`` are ``(name, safetensors dtype, shape, nbytes)``. The JSON is
    compact and padded with spaces to a multiple of 8 bytes, so the data (and
    every tensor whose offset is a multiple of its element size) is aligned.
    ``__metadata__`` is written only when there is metadata.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape, nbytes in tensors:
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def dtype_name(dtype: np.dtype) -> str:
    """The safetensors name of a numpy dtype (little-endian)."""
    return _NAME_OF_NUMPY[np.dtype(dtype).newbyteorder("<")]


# --------------------------------------------------------------------------- zero-copy reads


def map_safetensors(
    path: Path, *, bfloat16_as_uint16: bool = False
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Map every tensor of a safetensors file (header checked against the file size).

    numpy has no bfloat16; with ``bfloat16_as_uint16`` such tensors come back as
    their raw 16-bit patterns (see :func:`bfloat16_to_float32`), otherwise they
    are refused like any unsupported dtype.
    """
    dtypes = {**NUMPY_DTYPES, "BF16": np.uint16} if bfloat16_as_uint16 else NUMPY_DTYPES
    header = read_header(path, check_bounds=False)
    size = path.stat().st_size
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.tensors.items():
        dtype = dtypes.get(entry.dtype)
        if dtype is None:
            raise BundleError(f"{path}: tensor {name!r} has unsupported dtype {entry.dtype}")
        dtype = np.dtype(dtype).newbyteorder("<")
        expected = math.prod(entry.shape) * dtype.itemsize
        if entry.nbytes != expected:
            raise BundleError(f"{path}: tensor {name!r} byte range does not match its shape")
        if entry.end > size:
            raise BundleError(f"{path}: truncated (tensor {name!r} runs past the end of the file)")
        if expected == 0:
            tensors[name] = np.zeros(entry.shape, dtype=dtype)
        else:
            tensors[name] = np.memmap(
                path, dtype=dtype, mode="r", offset=entry.start, shape=entry.shape
            )
    check_file_bounds(path, header.tensors.values(), header.data_start, size)
    return header.metadata, tensors


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Metadata and memory-mapped tensors of any safetensors file (bfloat16 as uint16)."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file")
    return map_safetensors(path, bfloat16_as_uint16=True)


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bit patterns (uint16) to float32 exactly."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


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
    head = encode_header([(t.name, t.dtype, t.shape, t.nbytes) for t in order], metadata)
    with atomic_file(path) as out, _open_files() as files:
        out.write(head)
        for tensor in order:
            for piece in tensor.pieces:
                _write_piece(out, piece, files, on_bytes)
    return len(head) + sum(t.nbytes for t in order)


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
