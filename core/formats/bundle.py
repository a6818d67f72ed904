"""Derived-statistics bundles (docs/formats.md §Bundle): the typed object, read, validate, write.

A bundle is one ``*.safetensors`` file per (model, calibration dataset) run.
Reading memory-maps every tensor (:func:`core.io.safetensors.map_safetensors`)
so the metric engine streams through the pages it needs instead of copying a
~370 MB statistic into RAM.

Writing goes through ``safetensors.numpy.save`` (or, block by block, the one
safetensors header writer of :mod:`core.io.safetensors`) and the one atomic
writer (:mod:`core.io.atomic`), so a crash never leaves a half-written file
under the final name.

The paper's ``derived_stats.pt`` loads too, through :mod:`core.formats.legacy_pt`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import BundleError
from core.formats.bundle_values import check_values
from core.formats.legacy_pt import read_legacy_pt
from core.io.atomic import atomic_file, atomic_write_bytes
from core.io.jsonfile import short_repr
from core.io.safetensors import dtype_name, encode_header, map_safetensors
from core.sample_sums import MAX_UNITS, BlockedSums, blocked_sums

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
    # REAP as Cerebras' code computes it (docs/formats.md §Criteria, reap-literal):
    "reap_literal_sum": np.dtype(np.float32),
    "reap_literal_count": np.dtype(np.int32),
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


@dataclass(frozen=True)
class Bundle:
    """One loaded bundle: memory-mapped tensors plus the metadata that names them.

    ``tensors`` maps names to read-only arrays (``np.memmap`` for safetensors
    files). Optional statistics that were not collected are simply absent;
    :meth:`get` returns ``None`` for them so metrics can report null.

    ``totals`` and ``units`` cache :meth:`total` and :meth:`unit_sums`;
    :func:`load_bundle` fills them from the value checks' pass over the data,
    so the sums cost no second read.
    """

    path: Path
    metadata: dict[str, str]
    tensors: Mapping[str, np.ndarray] = field(repr=False)
    totals: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    units: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False, compare=False)

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

    def shape(self, name: str) -> tuple[int, ...]:
        """A tensor's shape, without reading (or value-checking) the tensor."""
        tensors = self.tensors
        if isinstance(tensors, CheckedOnFirstRead):
            return tensors.shape(name)
        return tuple(tensors[name].shape)

    @property
    def num_layers(self) -> int:
        return int(self.shape("prob_sum")[1])

    @property
    def num_experts(self) -> int:
        return int(self.shape("prob_sum")[2])

    @property
    def top_k(self) -> int | None:
        value = self.metadata.get("top_k")
        return int(value) if value not in (None, "", "0") else None

    @property
    def hash_routed_layers(self) -> list[int]:
        """MoE layers whose experts a token-id table chose, not the router (DeepSeek-V4).

        Their ``topk_count`` and weights are what the table picked; ``prob_sum`` is still
        the router's softmax, which did not choose. Empty for other bundles (or an
        unreadable entry: this only informs, it never stops a bundle from loading).
        """
        try:
            layers = json.loads(self.metadata.get("hash_routed_layers", "[]"))
        except ValueError:
            return []
        if not isinstance(layers, list):
            return []
        return [int(i) for i in layers if isinstance(i, int) and not isinstance(i, bool)]

    @property
    def num_samples(self) -> int:
        return int(self.shape("prob_sum")[0])

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

    def total(self, name: str) -> np.ndarray:
        """Σ over samples of the ``[N, L, E]`` statistic ``name``, ``[L, E]`` float64 (cached)."""
        self._adopt_checked_sums()
        if name not in self.totals:
            self._keep(name, blocked_sums(self.tensors[name], keep_groups=False).total)
        return self.totals[name]

    def unit_sums(self, name: str) -> np.ndarray | None:
        """``[G, L·E]`` float32 sums of ``name`` over each resampling unit (cached).

        ``None`` when the units are single samples (at most
        :data:`~core.sample_sums.MAX_UNITS`): the rows are their own sums.
        """
        self._adopt_checked_sums()
        if name not in self.units:
            sums = blocked_sums(self.tensors[name])
            self._keep(name, sums.total, sums.groups)
        return self.units[name]

    def _adopt_checked_sums(self) -> None:
        """Keep the sums that a deferred value check formed (it reads every float statistic).

        Why: the check and the sums are one pass over the data; summing again
        after a deferred check would read each bundle twice (at frontier scale,
        most of the app's cold start).
        """
        tensors = self.tensors
        if isinstance(tensors, CheckedOnFirstRead):
            tensors.hand_over_sums(self._keep)

    def _keep(self, name: str, total: np.ndarray, units: np.ndarray | None = None) -> None:
        """Cache sums read-only: every reader shares them, nobody edits them in place."""
        total.flags.writeable = False
        self.totals[name] = total
        if units is not None or self.tensors[name].shape[0] <= MAX_UNITS:
            if units is not None:
                units.flags.writeable = False
            self.units[name] = units

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


class CheckedOnFirstRead(Mapping[str, np.ndarray]):
    """A bundle's tensors whose values are checked the first time any of them is read.

    Why: checking values streams over every tensor (hundreds of MB a bundle at
    frontier scale), and the app opens a dozen bundles at start of which it
    shows two. Names, dtypes and shapes are checked at open (they cost nothing);
    the first read of any tensor runs :func:`check_values` once, so no number is
    ever computed from an unchecked file, by any path (signatures, resampling,
    sample analysis). A failed check raises the same :class:`BundleError` on
    every later read. Thread-safe: a worker and the UI may read at once.

    The check's pass also forms the sums over samples (:meth:`Bundle.total`), but
    not the resampling units' sums: the app (the reader that defers) computes
    its intervals in a child process that reads the files itself, and at
    frontier scale the units would hold ~94 MB a bundle for nothing.
    :meth:`Bundle.unit_sums` forms them on first use.
    """

    def __init__(self, path: Path, tensors: dict[str, np.ndarray], top_k: int) -> None:
        self._path = path
        self._raw = tensors
        self._top_k = top_k
        self._checked = False
        self._sums: dict[str, BlockedSums] = {}  # formed by the check, until the bundle keeps them
        self._lock = threading.Lock()

    @property
    def checked(self) -> bool:
        """Whether the values have been checked (and passed)."""
        return self._checked

    def check(self) -> None:
        """Check the values now (once); raises :class:`BundleError` if they are impossible."""
        if self._checked:
            return
        with self._lock:
            if not self._checked:
                self._sums = check_values(self._path, self._raw, self._top_k, unit_sums=False)
                self._checked = True

    def hand_over_sums(self, keep: Callable[[str, np.ndarray, np.ndarray | None], None]) -> None:
        """Check (once), then pass the sums the check formed on its way to ``keep``, once.

        See :func:`~core.formats.bundle_values.check_values`; the :class:`Bundle`
        keeps them (:meth:`Bundle.total`). Under the lock, so a second thread
        asking for a total meanwhile waits for them instead of summing again.
        """
        self.check()
        with self._lock:
            for name, sums in self._sums.items():
                keep(name, sums.total, sums.groups)
            self._sums = {}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._raw[name].shape)

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._raw[name]  # KeyError first: an absent tensor needs no check
        self.check()
        return array

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


# --------------------------------------------------------------------------- reading


def load_bundle(path: str | os.PathLike[str], *, defer_value_checks: bool = False) -> Bundle:
    """Load and validate a bundle (``.safetensors``, or the paper's ``.pt``).

    Raises :class:`BundleError` with a one-line message naming the file and the
    problem for anything that is not a valid bundle. With ``defer_value_checks``
    only the header, names, dtypes and shapes are checked now; the values are
    checked when a tensor is first read (:class:`CheckedOnFirstRead`).
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such file")
    if path.is_dir():
        raise BundleError(f"{path}: is a folder, not a bundle file")
    if path.suffix == ".pt":
        metadata, tensors = _from_legacy(
            *read_legacy_pt(path, {"format": FORMAT, "format_version": FORMAT_VERSION})
        )
    else:
        metadata, tensors = map_safetensors(path)
    bundle = Bundle(path=path, metadata=metadata, tensors=tensors)
    if defer_value_checks:
        validate(bundle, values=False)
        checked = CheckedOnFirstRead(path, tensors, int(metadata["top_k"]))
        bundle = Bundle(path=path, metadata=metadata, tensors=checked)
    else:
        for name, sums in validate(bundle).items():
            bundle._keep(name, sums.total, sums.groups)
    return bundle


def _from_legacy(
    metadata: dict[str, str], tensors: dict[str, np.ndarray]
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """A ``derived_stats.pt``'s contents as a bundle: bundle dtypes, bundle tensors only."""
    known = {**REQUIRED_TENSORS, **OPTIONAL_TENSORS}
    with np.errstate(over="ignore", invalid="ignore"):  # too big for float32: inf, refused later
        arrays = {k: v.astype(known[k], copy=False) for k, v in tensors.items() if k in known}
    return metadata, arrays


# --------------------------------------------------------------------------- validation


def validate(bundle: Bundle, *, values: bool = True) -> dict[str, BlockedSums]:
    """Check a bundle against docs/formats.md §Bundle; raise :class:`BundleError` if it is off.

    Returns the sums over samples (and units) of its float statistics (see
    :func:`~core.formats.bundle_values.check_values`), formed by the same pass.
    ``values=False`` checks all but the values (see :class:`CheckedOnFirstRead`) and
    returns no sums.
    """
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
        # Plain ASCII digits only: int() also takes "1_000", " 8 " and non-ASCII digits.
        if not re.fullmatch(r"[0-9]{1,9}", meta[key]):
            raise BundleError(f"{path}: metadata {key}={short_repr(meta[key])} is not an integer")
        ints[key] = int(meta[key])
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
    if not values:
        return {}
    return check_values(path, tensors, ints["top_k"])


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
    sizes = {
        name: int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        for name, (dtype, shape) in layout.items()
    }
    head = encode_header(
        [(name, dtype_name(dtype), shape, sizes[name]) for name, (dtype, shape) in layout.items()],
        {str(k): str(v) for k, v in metadata.items()},
    )
    with atomic_file(path, check=lambda tmp: _validate_written(tmp, path)) as handle:
        handle.write(head)
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
    return path


def _validate_written(tmp: Path, final: Path) -> None:
    """Load the finished temporary file as a bundle, naming the final path in any error."""
    try:
        metadata, tensors = map_safetensors(tmp)
    except BundleError as exc:
        raise BundleError(str(exc).replace(str(tmp), str(final))) from None
    validate(Bundle(path=final, metadata=metadata, tensors=tensors))


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
