"""The mask file (docs/formats.md §Mask file): kept expert ids per MoE layer, plus where they came from.

::

    {
      "format": "expert-calibration-lens/mask",
      "model": "openai/gpt-oss-20b", "num_experts": 32, "top_k": 4,
      "criterion": "mass", "sources": ["c4.safetensors"],
      "budget": {"kind": "per_layer", "r": 16},
      "created_at": "...", "tool_version": "0.1.0",
      "layers": [
        [0, 3, 5, ...],
        ...
      ]
    }

One layer per line, so diffs of two masks stay readable. The JSON Schema is
``core/formats/schemas/mask.schema.json``; :func:`mask_from_json` checks the
same rules (and the ones a schema cannot say: ids within ``0..num_experts-1``)
with one :class:`~core.errors.LensError` line per problem. Mask *making* is
:mod:`core.masks`; this module only reads, checks and writes the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import LensError
from core.io.atomic import atomic_write_text
from core.io.jsonfile import is_int, read_json, short_repr

MASK_FORMAT = "expert-calibration-lens/mask"
#: More experts per layer than any model has; a bigger count is a damaged file
#: (and would make the ``[L, E]`` boolean mask absurdly large).
MAX_EXPERTS = 1 << 16


@dataclass(frozen=True)
class Mask:
    """Kept expert ids per MoE layer, plus where they came from.

    ``layers[l]`` is the ascending list of kept expert ids of MoE layer l.
    ``top_k`` is the model's routing top-k when known (from the bundles or the
    checkpoint); ``budget`` describes how the mask was cut
    (``{"kind": "per_layer", "r": 8}`` or ``{"kind": "global", "total": 192,
    "min_per_layer": 4}``). ``extra`` keeps any other keys of a read file.
    """

    model: str
    num_experts: int
    criterion: str
    sources: list[str]
    layers: list[list[int]]
    top_k: int | None = None
    budget: dict | None = None
    extra: dict = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def kept_per_layer(self) -> list[int]:
        return [len(ids) for ids in self.layers]

    @property
    def total_kept(self) -> int:
        return sum(self.kept_per_layer)

    @property
    def name(self) -> str:
        """A short label: the file name without ``.json``, else criterion and sources."""
        if self.path is not None:
            return self.path.name.removesuffix(".json")
        sources = "+".join(Path(s).name.removesuffix(".safetensors") for s in self.sources)
        return f"{self.criterion}:{sources}" if sources else self.criterion

    def as_bool(self) -> np.ndarray:
        """The mask as a boolean ``[L, E]`` array."""
        out = np.zeros((self.num_layers, self.num_experts), dtype=bool)
        for layer, ids in enumerate(self.layers):
            out[layer, ids] = True
        return out

    def summary(self, name: str | None = None) -> dict:
        """What reports say about a mask: where it came from and how many experts it keeps."""
        return {
            "name": self.name if name is None else name,
            "path": None if self.path is None else str(self.path),
            "model": self.model,
            "criterion": self.criterion,
            "sources": list(self.sources),
            "budget": self.budget,
            "kept_per_layer": self.kept_per_layer,
            "total_kept": self.total_kept,
        }

    def to_json(self) -> dict:
        doc = {
            "format": MASK_FORMAT,
            "model": self.model,
            "num_experts": self.num_experts,
            "criterion": self.criterion,
            "sources": list(self.sources),
            "layers": [list(ids) for ids in self.layers],
        }
        if self.top_k is not None:
            doc["top_k"] = self.top_k
        if self.budget is not None:
            doc["budget"] = dict(self.budget)
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc


def write_mask(path: str | os.PathLike[str], mask: Mask) -> Path:
    """Write the SPEC mask JSON atomically; one layer per line so diffs stay readable."""
    path = Path(path)
    doc = mask.to_json()
    layers = doc.pop("layers")
    head = json.dumps(doc, indent=2)[:-2]  # drop the closing "\n}"
    rows = ",\n".join("    " + json.dumps(ids) for ids in layers)
    atomic_write_text(path, f'{head},\n  "layers": [\n{rows}\n  ]\n}}\n')
    return path


def read_mask(path: str | os.PathLike[str]) -> Mask:
    """Read and check a mask file; any problem is one :class:`LensError` line naming the file."""
    path = Path(path)
    return mask_from_json(read_json(path), where=str(path), path=path)


def mask_from_json(doc: object, *, where: str = "mask", path: Path | None = None) -> Mask:
    """Build a :class:`Mask` from a parsed JSON document, checking docs/formats.md §Mask file."""
    if not isinstance(doc, dict):
        raise LensError(f"{where}: not a mask file (the JSON is not an object)")
    if doc.get("format") != MASK_FORMAT:
        raise LensError(
            f"{where}: not a mask file (format is {doc.get('format')!r}, expected {MASK_FORMAT!r})"
        )
    for key in ("model", "num_experts", "criterion", "sources", "layers"):
        if key not in doc:
            raise LensError(f"{where}: mask has no {key!r}")
    num_experts = doc["num_experts"]
    if not is_int(num_experts) or not 1 <= num_experts <= MAX_EXPERTS:
        raise LensError(
            f"{where}: num_experts must be a positive integer (at most {MAX_EXPERTS}), "
            f"got {short_repr(num_experts)}"
        )
    for key in ("model", "criterion"):
        if not isinstance(doc[key], str):
            raise LensError(f"{where}: {key!r} must be a string, got {short_repr(doc[key])}")
    if doc.get("budget") is not None and not isinstance(doc["budget"], dict):
        raise LensError(f"{where}: 'budget' must be an object, got {short_repr(doc['budget'])}")
    layers = doc["layers"]
    if not isinstance(layers, list) or not layers:
        raise LensError(f"{where}: 'layers' must be a non-empty list with one list per MoE layer")
    if not isinstance(doc["sources"], list) or not all(isinstance(s, str) for s in doc["sources"]):
        raise LensError(f"{where}: 'sources' must be a list of paths")
    top_k = doc.get("top_k")
    if top_k is not None and (not is_int(top_k) or not 0 <= top_k <= num_experts):
        raise LensError(
            f"{where}: top_k must be a non-negative integer (at most num_experts), got {short_repr(top_k)}"
        )
    checked = [_check_layer(ids, layer, num_experts, where) for layer, ids in enumerate(layers)]
    known = {"format", "model", "num_experts", "criterion", "sources", "layers", "top_k", "budget"}
    return Mask(
        model=str(doc["model"]),
        num_experts=int(num_experts),
        criterion=str(doc["criterion"]),
        sources=list(doc["sources"]),
        layers=checked,
        top_k=int(top_k) if top_k else None,
        budget=doc.get("budget") if isinstance(doc.get("budget"), dict) else None,
        extra={k: v for k, v in doc.items() if k not in known},
        path=path,
    )


def _check_layer(ids: object, layer: int, num_experts: int, where: str) -> list[int]:
    if not isinstance(ids, list) or not all(is_int(e) for e in ids):
        raise LensError(f"{where}: layer {layer} must be a list of integer expert ids")
    if len(ids) > num_experts:
        raise LensError(f"{where}: layer {layer} lists {len(ids)} ids, more than {num_experts}")
    bad = [e for e in ids if not 0 <= e < num_experts]
    if bad:
        raise LensError(
            f"{where}: layer {layer} names expert {bad[0]}, outside 0..{num_experts - 1} "
            f"(num_experts={num_experts})"
        )
    if len(set(ids)) != len(ids):
        seen: set[int] = set()
        dup = next(e for e in ids if e in seen or seen.add(e))
        raise LensError(f"{where}: layer {layer} lists expert {dup} more than once")
    if not ids:
        raise LensError(f"{where}: layer {layer} keeps no experts")
    return sorted(ids)


def check_mask_fits(
    mask: Mask,
    *,
    num_layers: int,
    num_experts: int,
    top_k: int | None,
    where: str,
    what: str,
) -> None:
    """Refuse a mask whose shape does not match a model or whose layers keep fewer than top-k."""
    if mask.num_experts != num_experts:
        raise LensError(
            f"{where}: mask is for {mask.num_experts} experts per layer but {what} has {num_experts}"
        )
    if mask.num_layers != num_layers:
        raise LensError(
            f"{where}: mask has {mask.num_layers} layers but {what} has {num_layers} MoE layers"
        )
    if top_k:
        short = [(layer, n) for layer, n in enumerate(mask.kept_per_layer) if n < top_k]
        if short:
            layer, n = short[0]
            raise LensError(
                f"{where}: layer {layer} keeps {n} experts, fewer than the model's top-k of {top_k} "
                f"({len(short)} layer(s) do); every layer must keep at least top-k experts"
            )
