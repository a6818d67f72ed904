"""Derived-statistics bundles (docs/formats.md §Bundle): read, validate, write.

A bundle is one ``*.safetensors`` file per (model, calibration dataset) run.
Reading memory-maps every tensor straight from the file: the safetensors
layout is an 8-byte little-endian header length, a JSON header, then raw
little-endian arrays, so each tensor is an ``np.memmap`` at a known offset.
``safetensors.numpy.load_file`` would copy every tensor into RAM; a 20,000
sample gpt-oss-120b bundle is ~370 MB per statistic, so we map instead and
let the metric engine stream through the pages it needs.

Writing goes through ``safetensors.numpy.save_file`` into a temporary file in
the destination folder, fsynced and renamed over the target, so a crash never
leaves a half-written file under the final name.

The paper's ``derived_stats.pt`` loads too, through
``torch.load(weights_only=True)`` only; a file that needs full unpickling is
refused and none of its code runs.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import BundleError

FORMAT = "expert-calibration-lens/derived-stats"
FORMAT_VERSION = "1"

#: Tensors every bundle must hold, with their dtype and shape kind.
REQUIRED_TENSORS: dict[str, np.dtype] = {
    "prob_sum": np.dtype(np.float32),
    "token_count": np.dtype(np.int64),
    "example_ids": np.dtype(np.int64),
}
#: Per-sample, per-layer, per-expert sums written when collected ([N, L, E]).
OPTIONAL_TENSORS: dict[str, np.dtype] = {
    "energy_sum": np.dtype(np.float32),
    "topk_count": np.dtype(np.int32),
    "weight_sum": np.dtype(np.float32),
    "act_norm_sum": np.dtype(np.float32),
    "act_sqnorm_sum": np.dtype(np.float32),
    "reap_sum": np.dtype(np.float32),
}
PER_EXPERT_TENSORS = ("prob_sum", *OPTIONAL_TENSORS)
REQUIRED_METADATA = (
    "format",
    "format_version",
    "model",
    "dataset",
    "num_layers",
    "num_experts",
    "top_k",
)

_SAFETENSORS_DTYPES = {
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
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Bundle:
    """One loaded bundle: memory-mapped tensors plus the metadata that names them.

    ``tensors`` maps names to read-only arrays (``np.memmap`` for safetensors
    files). Optional statistics that were not collected are simply absent;
    :meth:`get` returns ``None`` for them so metrics can report null.
    """

    path: Path
    metadata: dict[str, str]
    tensors: Mapping[str, np.ndarray] = field(repr=False)

    @property
    def model(self) -> str:
        return self.metadata.get("model", "unknown")

    @property
    def dataset(self) -> str:
        return self.metadata.get("dataset", "unknown")

    @property
    def name(self) -> str:
        """Short label for tables and pickers: the file name without suffix."""
        return self.path.name.removesuffix(".safetensors").removesuffix(".pt")

    @property
    def num_layers(self) -> int:
        return int(self.tensors["prob_sum"].shape[1])

    @property
    def num_experts(self) -> int:
        return int(self.tensors["prob_sum"].shape[2])

    @property
    def top_k(self) -> int | None:
        value = self.metadata.get("top_k")
        return int(value) if value not in (None, "", "0") else None

    @property
    def num_samples(self) -> int:
        return int(self.tensors["prob_sum"].shape[0])

    @property
    def prob_sum(self) -> np.ndarray:
        return self.tensors["prob_sum"]

    @property
    def token_count(self) -> np.ndarray:
        return self.tensors["token_count"]

    @property
    def example_ids(self) -> np.ndarray:
        return self.tensors["example_ids"]

    @property
    def num_tokens(self) -> int:
        return int(np.asarray(self.token_count).sum())

    def has(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str) -> np.ndarray | None:
        return self.tensors.get(name)

    def summary(self) -> dict[str, object]:
        """The docs/formats.md §JSON output ``{...}`` description of a bundle."""
        return {
            "path": str(self.path),
            "model": self.model,
            "dataset": self.dataset,
            "samples": self.num_samples,
            "tokens": self.num_tokens,
            "num_layers": self.num_layers,
            "num_experts": self.num_experts,
            "top_k": self.top_k,
            "statistics": sorted(n for n in PER_EXPERT_TENSORS if n in self.tensors),
        }


# --------------------------------------------------------------------------- reading


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load and validate a bundle (``.safetensors``, or the paper's ``.pt``).

    Raises :class:`BundleError` with a one-line message naming the file and the
    problem for anything that is not a valid bundle.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file")
    if path.is_dir():
        raise BundleError(f"{path}: is a folder, not a bundle file")
    if path.suffix == ".pt":
        metadata, tensors = _read_legacy_pt(path)
    else:
        metadata, tensors = _read_safetensors(path)
    bundle = Bundle(path=path, metadata=metadata, tensors=tensors)
    validate(bundle)
    return bundle


@dataclass(frozen=True)
class HeaderEntry:
    """One tensor of a safetensors header: its dtype name, shape and absolute byte range."""

    name: str
    dtype: str  # safetensors name: F32, BF16, I64, U8, ...
    shape: tuple[int, ...]
    begin: int  # offset of the first byte in the file
    end: int  # offset one past the last byte


def read_safetensors_header(path: Path) -> tuple[dict[str, str], dict[str, HeaderEntry]]:
    """Parse and check a safetensors header against the file: metadata and tensor entries.

    Shared by bundle reading and checkpoint pruning; every problem (empty,
    too short, bad header length, not JSON, malformed entry, a range past the
    end) is a :class:`BundleError` naming the file. Dtypes are not interpreted.
    """
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
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise BundleError(f"{path}: not a safetensors file (header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise BundleError(f"{path}: __metadata__ is not a string map")
    data_start = 8 + header_len
    entries: dict[str, HeaderEntry] = {}
    for name, info in header.items():
        try:
            dtype_name, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            shape = tuple(int(s) for s in shape)
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise BundleError(f"{path}: tensor {name!r} has a malformed header entry") from None
        if not 0 <= begin <= end:
            raise BundleError(f"{path}: tensor {name!r} has a malformed byte range")
        entries[name] = HeaderEntry(
            name, str(dtype_name), shape, data_start + begin, data_start + end
        )
    return {str(k): str(v) for k, v in metadata.items()}, entries


def _read_safetensors(
    path: Path, *, bfloat16_as_uint16: bool = False
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Map every tensor of a safetensors file (header checked against the file size).

    numpy has no bfloat16; with ``bfloat16_as_uint16`` such tensors come back as
    their raw 16-bit patterns (see :func:`bfloat16_to_float32`), otherwise they
    are refused like any unsupported dtype.
    """
    dtypes = (
        {**_SAFETENSORS_DTYPES, "BF16": np.uint16} if bfloat16_as_uint16 else _SAFETENSORS_DTYPES
    )
    metadata, entries = read_safetensors_header(path)
    size = path.stat().st_size
    tensors: dict[str, np.ndarray] = {}
    for name, entry in entries.items():
        dtype = dtypes.get(entry.dtype)
        if dtype is None:
            raise BundleError(f"{path}: tensor {name!r} has unsupported dtype {entry.dtype}")
        dtype = np.dtype(dtype).newbyteorder("<")
        expected = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
        if entry.end - entry.begin != expected:
            raise BundleError(f"{path}: tensor {name!r} byte range does not match its shape")
        if entry.end > size:
            raise BundleError(f"{path}: truncated (tensor {name!r} runs past the end of the file)")
        if expected == 0:
            tensors[name] = np.zeros(entry.shape, dtype=dtype)
        else:
            tensors[name] = np.memmap(
                path, dtype=dtype, mode="r", offset=entry.begin, shape=entry.shape
            )
    return metadata, tensors


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Metadata and memory-mapped tensors of any safetensors file (bfloat16 as uint16)."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file")
    return _read_safetensors(path, bfloat16_as_uint16=True)


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bit patterns (uint16) to float32 exactly."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _read_legacy_pt(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The paper's ``derived_stats.pt``: a dict of tensors, loaded weights-only."""
    try:
        import torch
    except ImportError:
        raise BundleError(
            f"{path}: reading .pt bundles needs torch (pip install 'expert-calibration-lens[collect]')"
        ) from None
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise BundleError(
            f"{path}: refused: not loadable with weights_only=True ({first[:120]}); "
            "only plain tensor dicts are accepted"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors...
        raise BundleError(f"{path}: not a readable torch file ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or "prob_sum" not in obj:
        raise BundleError(f"{path}: a .pt bundle must be a dict holding at least 'prob_sum'")
    tensors: dict[str, np.ndarray] = {}
    metadata: dict[str, str] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().numpy()
        elif isinstance(value, (str, int, float)):
            metadata[str(key)] = str(value)
    prob_sum = tensors.get("prob_sum")
    if prob_sum is None or prob_sum.ndim != 3:
        raise BundleError(f"{path}: 'prob_sum' must be a [N, L, E] tensor")
    n, num_layers, num_experts = prob_sum.shape
    tensors["prob_sum"] = prob_sum.astype(np.float32, copy=False)
    if "token_count" not in tensors:
        raise BundleError(f"{path}: missing tensor 'token_count'")
    tensors["token_count"] = tensors["token_count"].reshape(-1).astype(np.int64, copy=False)
    ids = tensors.get("example_ids")
    tensors["example_ids"] = (
        np.arange(n, dtype=np.int64)
        if ids is None
        else ids.reshape(-1).astype(np.int64, copy=False)
    )
    for name, dtype in OPTIONAL_TENSORS.items():
        if name in tensors:
            tensors[name] = tensors[name].astype(dtype, copy=False)
    tensors = {k: v for k, v in tensors.items() if k in REQUIRED_TENSORS or k in OPTIONAL_TENSORS}
    metadata.setdefault("model", "unknown")
    metadata.setdefault("dataset", path.parent.name or path.stem)
    metadata.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        num_layers=str(num_layers),
        num_experts=str(num_experts),
        source_format="derived_stats.pt",
    )
    metadata.setdefault("top_k", "0")
    return metadata, tensors


# --------------------------------------------------------------------------- validation


def validate(bundle: Bundle) -> None:
    """Check a bundle against docs/formats.md §Bundle; raise :class:`BundleError` if it is off."""
    path, meta, tensors = bundle.path, bundle.metadata, bundle.tensors
    for key in REQUIRED_METADATA:
        if key not in meta:
            raise BundleError(f"{path}: missing metadata key {key!r}")
    if meta["format"] != FORMAT:
        raise BundleError(f"{path}: metadata format is {meta['format']!r}, expected {FORMAT!r}")
    if meta["format_version"] != FORMAT_VERSION:
        raise BundleError(
            f"{path}: format_version {meta['format_version']!r} is not supported (this tool reads {FORMAT_VERSION})"
        )
    ints = {}
    for key in ("num_layers", "num_experts", "top_k"):
        try:
            ints[key] = int(meta[key])
        except ValueError:
            raise BundleError(f"{path}: metadata {key}={meta[key]!r} is not an integer") from None
    for name in REQUIRED_TENSORS:
        if name not in tensors:
            raise BundleError(f"{path}: missing tensor {name!r}")
    for name, array in tensors.items():
        dtype = REQUIRED_TENSORS.get(name) or OPTIONAL_TENSORS.get(name)
        if dtype is not None and array.dtype != dtype:
            raise BundleError(f"{path}: tensor {name!r} has dtype {array.dtype}, expected {dtype}")
    prob_sum = tensors["prob_sum"]
    if prob_sum.ndim != 3:
        raise BundleError(
            f"{path}: 'prob_sum' has shape {list(prob_sum.shape)}, expected [N, L, E]"
        )
    n, num_layers, num_experts = prob_sum.shape
    if (num_layers, num_experts) != (ints["num_layers"], ints["num_experts"]):
        raise BundleError(
            f"{path}: 'prob_sum' is [N, {num_layers}, {num_experts}] but metadata says "
            f"num_layers={ints['num_layers']}, num_experts={ints['num_experts']}"
        )
    if num_layers < 1 or num_experts < 1:
        raise BundleError(f"{path}: bundle has no layers or no experts")
    if not 0 <= ints["top_k"] <= num_experts:
        raise BundleError(f"{path}: metadata top_k={ints['top_k']} is outside 0..{num_experts}")
    for name in ("token_count", "example_ids"):
        if tensors[name].shape != (n,):
            raise BundleError(
                f"{path}: tensor {name!r} has shape {list(tensors[name].shape)}, expected [{n}]"
            )
    for name in OPTIONAL_TENSORS:
        if name in tensors and tensors[name].shape != prob_sum.shape:
            raise BundleError(
                f"{path}: tensor {name!r} has shape {list(tensors[name].shape)}, expected {list(prob_sum.shape)}"
            )
    if n == 0:
        raise BundleError(f"{path}: bundle holds no samples")
    if np.any(np.asarray(tensors["token_count"]) < 0):
        raise BundleError(f"{path}: 'token_count' has negative entries")
    if int(np.asarray(tensors["token_count"]).sum()) == 0:
        raise BundleError(f"{path}: bundle holds zero tokens (every sample has token_count 0)")


# --------------------------------------------------------------------------- writing


def bundle_metadata(
    *, model: str, dataset: str, num_layers: int, num_experts: int, top_k: int, **extra: object
) -> dict[str, str]:
    """The required metadata (docs/formats.md §Bundle) plus any extra provenance, all as strings."""
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": str(model),
        "dataset": str(dataset),
        "num_layers": str(int(num_layers)),
        "num_experts": str(int(num_experts)),
        "top_k": str(int(top_k)),
    }
    for key, value in extra.items():
        if value is not None:
            meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def write_bundle(
    path: str | os.PathLike[str], tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]
) -> Path:
    """Validate and atomically write a bundle; returns the final path.

    ``tensors`` must use the format's names and dtypes (they are cast when the cast
    is lossless in kind, e.g. float64 sums to float32). Unknown tensor names are
    refused so that typos do not silently produce a bundle missing a statistic.
    """
    path = Path(path)
    known = {**REQUIRED_TENSORS, **OPTIONAL_TENSORS}
    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if name not in known:
            raise BundleError(f"{path}: refusing to write unknown tensor {name!r}")
        arrays[name] = np.ascontiguousarray(np.asarray(value).astype(known[name], copy=False))
    meta = {str(k): str(v) for k, v in metadata.items()}
    validate(Bundle(path=path, metadata=meta, tensors=arrays))
    from safetensors.numpy import save

    atomic_write_bytes(path, save(arrays, metadata=meta))
    return path


_NUMPY_TO_SAFETENSORS = {np.dtype(v).newbyteorder("<"): k for k, v in _SAFETENSORS_DTYPES.items()}


def write_bundle_streaming(
    path: str | os.PathLike[str],
    layout: Mapping[str, tuple[np.dtype, tuple[int, ...]]],
    blocks: Iterable[tuple[str, np.ndarray]],
    metadata: Mapping[str, str],
) -> Path:
    """Write a bundle block by block, so memory never holds a whole tensor.

    ``layout`` gives each tensor's dtype and shape, in file order; ``blocks``
    yields ``(name, rows)`` in that same order, the rows of each tensor in
    sequence. The file is checked with :func:`load_bundle` before it is
    renamed into place, so a wrong layout never produces a bundle.
    """
    path = Path(path)
    header: dict[str, object] = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    offset = 0
    sizes: dict[str, int] = {}
    for name, (dtype, shape) in layout.items():
        dtype = np.dtype(dtype).newbyteorder("<")
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {
            "dtype": _NUMPY_TO_SAFETENSORS[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        sizes[name] = size
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw)) + raw)
            written = dict.fromkeys(layout, 0)
            order = list(layout)
            current = 0  # index in `order` of the tensor being written
            for name, rows in blocks:
                while current < len(order) and written[order[current]] == sizes[order[current]]:
                    current += 1
                if current == len(order) or order[current] != name:
                    raise BundleError(f"{path}: tensor {name!r} written out of layout order")
                data = np.ascontiguousarray(rows, dtype=layout[name][0]).tobytes()
                written[name] += len(data)
                if written[name] > sizes[name]:
                    raise BundleError(f"{path}: too many rows for tensor {name!r}")
                handle.write(data)
            short = [n for n in order if written[n] != sizes[n]]
            if short:
                raise BundleError(f"{path}: tensor {short[0]!r} is incomplete")
            handle.flush()
            os.fsync(handle.fileno())
        validate(Bundle(path=path, **_read_for_validation(Path(tmp), path)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _read_for_validation(tmp: Path, final: Path) -> dict:
    try:
        metadata, tensors = _read_safetensors(tmp)
    except BundleError as exc:
        raise BundleError(str(exc).replace(str(tmp), str(final))) from None
    return {"metadata": metadata, "tensors": tensors}


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; a bundle or mask is meant to be shared like
        # any file the user writes, so give it the mode open() would (0666 & ~umask).
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _current_umask() -> int:
    """The process umask (reading it requires setting it; restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def find_bundles(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into bundle paths (folders: their ``*.safetensors``)."""
    found: list[Path] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            found.extend(
                sorted(p for p in item.glob("*.safetensors") if not p.name.startswith("."))
            )
        else:
            found.append(item)
    return found
