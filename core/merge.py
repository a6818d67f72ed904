"""Concatenate bundles of the same model into one (``lens merge``).

Collection can be sharded across processes, GPUs or machines (torchrun ranks,
a SLURM array, by hand); each part is a complete bundle over some samples and
merging gives the bundle one run would have written. Samples of one dataset
are sorted by ``example_ids``; parts from different datasets stay in the order
given (a deliberately mixed calibration set).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.errors import LensError
from core.formats.bundle import OPTIONAL_TENSORS, Bundle, bundle_metadata, load_bundle, write_bundle


@dataclass(frozen=True)
class MergeResult:
    path: Path
    samples: int
    dropped_statistics: list[str]  # optional tensors missing from some part, left out of the result


def check_same_model(bundles: list[Bundle]) -> None:
    first = bundles[0]
    for other in bundles[1:]:
        for what, a, b in (
            ("model", first.model, other.model),
            ("num_layers", first.num_layers, other.num_layers),
            ("num_experts", first.num_experts, other.num_experts),
            ("top_k", first.top_k, other.top_k),
        ):
            if a != b:
                raise LensError(
                    f"{other.path}: {what} is {b!r} but {first.path} has {a!r}; cannot merge"
                )


def check_no_duplicates(bundles: list[Bundle]) -> None:
    """Refuse a sample id that appears twice within one dataset (counted twice otherwise)."""
    by_dataset: dict[str, list[Bundle]] = {}
    for bundle in bundles:
        by_dataset.setdefault(bundle.dataset, []).append(bundle)
    for dataset, members in by_dataset.items():
        ids = np.concatenate([np.asarray(b.example_ids) for b in members])
        unique, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            dup = int(unique[counts > 1][0])
            owners = [str(b.path) for b in members if dup in np.asarray(b.example_ids)]
            raise LensError(
                f"{owners[-1]}: example id {dup} of dataset {dataset!r} is also in {owners[0]} "
                f"({int(np.sum(counts > 1))} ids overlap); pass --allow-duplicates to keep both"
            )


def merge_bundles(
    paths: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    allow_duplicates: bool = False,
    dataset: str | None = None,
) -> MergeResult:
    if len(paths) < 1:
        raise LensError("merge needs at least one bundle")
    out = Path(out)
    bundles = [load_bundle(p) for p in paths]
    check_same_model(bundles)
    if not allow_duplicates:
        check_no_duplicates(bundles)
    names = ["prob_sum", "token_count", "example_ids"]
    dropped = []
    for name in OPTIONAL_TENSORS:
        if all(b.has(name) for b in bundles):
            names.append(name)
        elif any(b.has(name) for b in bundles):
            dropped.append(name)

    # Group parts by dataset (first appearance order) and sort each group by example id.
    datasets: list[str] = []
    for b in bundles:
        if b.dataset not in datasets:
            datasets.append(b.dataset)
    tensors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for ds in datasets:
        members = [b for b in bundles if b.dataset == ds]
        ids = np.concatenate([np.asarray(b.example_ids) for b in members])
        order = np.argsort(ids, kind="stable")
        for name in names:
            stacked = np.concatenate([np.asarray(b.tensors[name]) for b in members])
            tensors[name].append(stacked[order])
    arrays = {name: np.concatenate(parts) for name, parts in tensors.items()}

    first = bundles[0]
    required = (
        "format",
        "format_version",
        "model",
        "dataset",
        "num_layers",
        "num_experts",
        "top_k",
    )
    extra: dict[str, object] = {k: v for k, v in first.metadata.items() if k not in required}
    extra["merged_from"] = json.dumps([str(b.path) for b in bundles])
    extra["merged_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta = bundle_metadata(
        model=first.model,
        dataset=dataset or "+".join(datasets),
        num_layers=first.num_layers,
        num_experts=first.num_experts,
        top_k=first.top_k or 0,
        **extra,
    )
    write_bundle(out, arrays, meta)
    return MergeResult(out, int(arrays["token_count"].shape[0]), dropped)
