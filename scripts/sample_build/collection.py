"""Stage 4 (``collect``): every calibration set through ``core.collect.runner.run_collection``.

Nothing here computes or writes a statistic: the sample bundles must come from the
same code a user runs with ``lens collect``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from core.collect import runner

from .settings import (
    BASELINE_SETS,
    CALIBRATION_SETS,
    HOLDOUT_EVERY,
    HOLDOUT_EVERY_BY_SET,
    MODEL_DIR,
    OUT_DIR,
    WORK,
)
from .textio import collect_progress, log
from .training import save_untrained


def collect_one(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    dataset_name: str,
    num_samples: int | None,
    max_length: int,
    batch_size: int,
    overwrite: bool = False,
    command: str | None = None,
    extra_metadata: dict[str, str] | None = None,
    progress: Callable | None = None,
) -> Path:
    """Collect one bundle through the project's own pipeline (``run_collection``).

    This is deliberately nothing but a call into ``core.collect.runner``: the
    sample bundles must come from the same code a user runs with ``lens collect``.
    """
    config = runner.CollectConfig.from_settings(
        model=str(model),
        data=str(data),
        out=Path(out),
        num_samples=num_samples,
        max_length=max_length,
        batch_size=batch_size,
        dataset_name=dataset_name,
        device="cpu",
        dtype="float32",
        overwrite=overwrite,
        command=command,
        extra_metadata=dict(extra_metadata or {}),
    )
    return runner.run_collection(config, progress=progress)


def stage_collect(args: argparse.Namespace) -> None:
    OUT_DIR.mkdir(exist_ok=True)
    jobs = [
        (MODEL_DIR, OUT_DIR / f"{name}.safetensors", name) for name in args.sets or CALIBRATION_SETS
    ]
    # A baseline that is not shipped: the untrained model on a few sets (artifacts/ only).
    if not args.sets:
        untrained = save_untrained()
        jobs += [(untrained, WORK / "untrained" / f"{n}.safetensors", n) for n in BASELINE_SETS]
    command = "scripts/build_sample_stats.py collect" + (
        f" --num-samples {args.num_samples} --max-length {args.max_length}"
    )
    for model, out, name in jobs:
        if out.exists() and not args.force:
            log(f"collect: {out} exists, skipping")
            continue
        t0 = time.time()
        collect_one(
            model,
            WORK / "corpora" / "calibration" / f"{name}.jsonl",
            out,
            dataset_name=name,
            num_samples=args.num_samples,
            max_length=args.max_length,
            batch_size=args.collect_batch_size,
            overwrite=True,
            command=command,
            extra_metadata={
                "sample_build": "scripts/build_sample_stats.py",
                "calibration_set": CALIBRATION_SETS[name],
                "heldout": (
                    f"repeats dropped, then every "
                    f"{HOLDOUT_EVERY_BY_SET.get(name, HOLDOUT_EVERY)}th distinct "
                    "document/conversation/file of the source, never trained on"
                ),
            },
            progress=collect_progress(f"collect {name}"),
        )
        log(f"collect: {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f}s")
