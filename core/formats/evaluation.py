"""The evaluation JSON written by ``lens evaluate`` and read by ``lens predict-vs-actual``.

::

    {
      "format": "expert-calibration-lens/evaluation", "format_version": 1,
      "model": "openai/gpt-oss-20b", "family": "gpt_oss",
      "data": "heldout.jsonl", "dataset": "heldout",
      "samples": 256, "tokens": 130816,          # next-token predictions scored
      "max_length": 512, "num_layers": 24, "num_experts": 32, "top_k": 4,
      "baseline": {"loss": 2.31, "perplexity": 10.07, "top1_accuracy": 0.52},
      "masks": [
        {"name": "c4-mass", "path": "c4-mass.json", "criterion": "mass",
         "sources": ["c4.safetensors"], "kept_per_layer": [16, ...], "total_kept": 384,
         "layers": [[0, 3, ...], ...],             # the evaluated mask, so results stand alone
         "loss": 2.45, "perplexity": 11.59, "loss_increase": 0.14,
         "loss_increase_ci": [0.12, 0.16],        # optional: paired bootstrap over samples
         "top1_accuracy": 0.50, "top1_agreement": 0.91}
      ],
      "created_at": "...", "tool_version": "0.1.0", "command": "lens evaluate ..."
    }

``loss`` is the mean next-token cross-entropy (nats) over every non-padding
target token of the data (token-weighted over the whole dataset),
``perplexity`` = exp(loss), ``top1_accuracy`` the share of those positions
whose argmax is the actual next token, ``top1_agreement`` the share whose
argmax equals the original model's, ``loss_increase`` = loss − baseline loss,
``loss_increase_ci`` (optional; files written before it lack it) its percentile
interval from a bootstrap over held-out samples paired with the baseline
(:mod:`core.evaluate.loss_interval`).
Reading never unpickles; every problem is one :class:`LensError` line. The JSON
Schema is ``core/formats/schemas/evaluation.schema.json``.

The format lives here, beside the other formats and away from the torch
package :mod:`core.evaluate` that writes it, so :mod:`core.predict` and the
app read results without importing anything that needs torch.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import LensError
from core.formats.mask import MASK_FORMAT, Mask, mask_from_json
from core.io.atomic import atomic_write_text
from core.io.jsonfile import is_int, is_number, json_format, read_json, short_repr

EVALUATION_FORMAT = "expert-calibration-lens/evaluation"
FORMAT_VERSION = 1

_MASK_NUMBERS = ("loss", "perplexity", "loss_increase", "top1_accuracy", "top1_agreement")
_BASELINE_NUMBERS = ("loss", "perplexity", "top1_accuracy")


@dataclass(frozen=True)
class MaskResult:
    """One evaluated mask: the mask itself and what it did to the model on the data."""

    mask: Mask
    name: str
    loss: float
    perplexity: float
    loss_increase: float
    top1_accuracy: float
    top1_agreement: float
    extra: dict = field(default_factory=dict)  # e.g. {"lm_eval": {...}}
    loss_increase_ci: tuple[float, float] | None = None  # paired bootstrap over samples

    def to_json(self) -> dict:
        mask = self.mask
        return {
            **mask.summary(self.name),
            "layers": [list(ids) for ids in mask.layers],
            "loss": self.loss,
            "perplexity": self.perplexity,
            "loss_increase": self.loss_increase,
            **(
                {}
                if self.loss_increase_ci is None
                else {"loss_increase_ci": list(self.loss_increase_ci)}
            ),
            "top1_accuracy": self.top1_accuracy,
            "top1_agreement": self.top1_agreement,
            **self.extra,
        }


@dataclass(frozen=True)
class Evaluation:
    """Loss, perplexity and top-1 figures of a model and of masks of it, on one dataset."""

    model: str
    data: str
    dataset: str
    samples: int
    tokens: int
    num_layers: int
    num_experts: int
    top_k: int | None
    baseline: dict  # loss, perplexity, top1_accuracy (and any extra keys)
    masks: list[MaskResult]
    family: str | None = None
    max_length: int | None = None
    extra: dict = field(default_factory=dict)  # created_at, tool_version, command, ...
    path: Path | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        if self.path is not None:
            return self.path.name.removesuffix(".json")
        return self.dataset

    def to_json(self) -> dict:
        doc = {
            "format": EVALUATION_FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "family": self.family,
            "data": self.data,
            "dataset": self.dataset,
            "samples": self.samples,
            "tokens": self.tokens,
            "max_length": self.max_length,
            "num_layers": self.num_layers,
            "num_experts": self.num_experts,
            "top_k": self.top_k,
            "baseline": dict(self.baseline),
            "masks": [result.to_json() for result in self.masks],
        }
        for key, value in self.extra.items():
            doc.setdefault(key, value)
        return doc


def write_evaluation(path: str | os.PathLike[str], evaluation: Evaluation) -> Path:
    """Write the evaluation JSON atomically; lists of ids on one line so files stay readable."""
    path = Path(path)
    text = json.dumps(evaluation.to_json(), indent=2, allow_nan=False)
    atomic_write_text(path, _INT_LIST.sub(_one_line, text) + "\n")
    return path


#: A JSON list holding only integers, spread over lines by ``indent``.
_INT_LIST = re.compile(r"\[(?:\s*-?\d+\s*,)*\s*-?\d+\s*\]")


def _one_line(match: re.Match) -> str:
    return json.dumps(json.loads(match.group(0)))


def read_evaluation(path: str | os.PathLike[str]) -> Evaluation:
    """Read and check an evaluation file; any problem is one line naming the file."""
    path = Path(path)
    if path.is_dir():
        raise LensError(f"{path}: is a folder, not an evaluation file")
    return evaluation_from_json(read_json(path), where=str(path), path=path)


def evaluation_from_json(
    doc: object, *, where: str = "evaluation", path: Path | None = None
) -> Evaluation:
    if not isinstance(doc, dict):
        raise LensError(f"{where}: not an evaluation file (the JSON is not an object)")
    if doc.get("format") != EVALUATION_FORMAT:
        hint = (
            " (that is a mask; give the `lens evaluate` output)"
            if doc.get("format") == MASK_FORMAT
            else ""
        )
        raise LensError(
            f"{where}: not an evaluation file (format is {doc.get('format')!r}, "
            f"expected {EVALUATION_FORMAT!r}){hint}"
        )
    version = doc.get("format_version")
    if not is_int(version) or version != FORMAT_VERSION:  # true == 1 in Python
        raise LensError(
            f"{where}: evaluation format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    for key in ("model", "data", "dataset", "samples", "tokens", "num_layers", "num_experts"):
        if key not in doc:
            raise LensError(f"{where}: evaluation has no {key!r}")
    for key in ("samples", "tokens", "num_layers", "num_experts"):
        if not is_int(doc[key]) or doc[key] < 0:
            raise LensError(
                f"{where}: {key!r} must be a non-negative integer, got {short_repr(doc[key])}"
            )
    for key in ("model", "data", "dataset"):
        if not isinstance(doc[key], str):
            raise LensError(f"{where}: {key!r} must be a string, got {short_repr(doc[key])}")
    baseline = doc.get("baseline")
    if not isinstance(baseline, dict):
        raise LensError(f"{where}: evaluation has no 'baseline' object")
    for key in _BASELINE_NUMBERS:
        _number(baseline.get(key), f"{where}: baseline {key!r}")
    masks = doc.get("masks")
    if not isinstance(masks, list):
        raise LensError(f"{where}: 'masks' must be a list")
    results = [_mask_result(entry, i, doc, where, path) for i, entry in enumerate(masks)]
    known = {
        "format", "format_version", "model", "family", "data", "dataset", "samples", "tokens",
        "max_length", "num_layers", "num_experts", "top_k", "baseline", "masks",
    }  # fmt: skip
    top_k = doc.get("top_k")
    max_length = doc.get("max_length")
    return Evaluation(
        model=str(doc["model"]),
        data=str(doc["data"]),
        dataset=str(doc["dataset"]),
        samples=int(doc["samples"]),
        tokens=int(doc["tokens"]),
        num_layers=int(doc["num_layers"]),
        num_experts=int(doc["num_experts"]),
        top_k=int(top_k) if is_int(top_k) else None,
        baseline=dict(baseline),
        masks=results,
        family=None if doc.get("family") is None else str(doc["family"]),
        max_length=int(max_length) if is_int(max_length) else None,
        extra={k: v for k, v in doc.items() if k not in known},
        path=path,
    )


def _mask_result(entry: object, i: int, doc: dict, where: str, path: Path | None) -> MaskResult:
    at = f"{where}: masks[{i}]"
    if not isinstance(entry, dict):
        raise LensError(f"{at} is not an object")
    for key in ("name", "criterion", "layers"):
        if key not in entry:
            raise LensError(f"{at} has no {key!r}")
    if not isinstance(entry["name"], str):
        raise LensError(f"{at} 'name' must be a string, got {short_repr(entry['name'])}")
    numbers = {key: _number(entry.get(key), f"{at} {key!r}") for key in _MASK_NUMBERS}
    mask_doc = {
        "format": MASK_FORMAT,
        "model": entry.get("model", doc["model"]),
        "num_experts": doc["num_experts"],
        "criterion": entry["criterion"],
        "sources": entry.get("sources", []),
        "layers": entry["layers"],
        "budget": entry.get("budget"),
    }
    mask_path = entry.get("path")
    mask = mask_from_json(mask_doc, where=at)
    if mask.num_layers != doc["num_layers"]:
        raise LensError(
            f"{at} has {mask.num_layers} layers but the evaluation has {doc['num_layers']}"
        )
    mask = Mask(
        model=mask.model,
        num_experts=mask.num_experts,
        criterion=mask.criterion,
        sources=mask.sources,
        layers=mask.layers,
        budget=mask.budget,
        path=Path(mask_path) if isinstance(mask_path, str) else None,
    )
    known = {
        "name", "path", "model", "criterion", "sources", "budget", "kept_per_layer",
        "total_kept", "layers", "loss_increase_ci", *_MASK_NUMBERS,
    }  # fmt: skip
    return MaskResult(
        mask=mask,
        name=str(entry["name"]),
        extra={k: v for k, v in entry.items() if k not in known},
        loss_increase_ci=_interval(entry.get("loss_increase_ci"), f"{at} 'loss_increase_ci'"),
        **numbers,
    )


def _interval(value: object, what: str) -> tuple[float, float] | None:
    """An optional ``[lo, hi]`` pair of finite numbers with lo ≤ hi."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise LensError(f"{what} must be a pair [lo, hi], got {value!r}")
    lo, hi = (_number(v, what) for v in value)
    if lo > hi:
        raise LensError(f"{what} must have lo <= hi, got {value!r}")
    return lo, hi


def evaluation_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Evaluation results among ``paths``: ``.json`` files given, and in folders every ``*.json``
    whose ``format`` is the evaluation format (mask files and others are skipped)."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(
                p
                for p in sorted(item.glob("*.json"))
                if not p.name.startswith(".") and json_format(p) == EVALUATION_FORMAT
            )
        elif item.suffix == ".json":
            found.append(item)
    return found


def _number(value: object, what: str) -> float:
    if not is_number(value):
        raise LensError(f"{what} must be a finite number, got {short_repr(value)}")
    return float(value)
