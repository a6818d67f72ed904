"""Stage 6 (``evaluate``): masks measured on new text through ``core.evaluate.runner``.

The evaluation text is the calibration lines after those a bundle holds, and only
when none was trained on or calibrated with; results are written with
``write_evaluation``, exactly what ``lens evaluate --out`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.collect.data import iter_samples
from core.evaluate import runner
from core.formats.bundle import load_bundle
from core.formats.evaluation import write_evaluation
from core.formats.mask import write_mask
from core.prune.aimer import aimer_checkpoint_scores

from .mix import training_texts
from .prediction import prediction_summary, print_evaluation, study_summary
from .settings import CALIBRATION_SETS, DATA_GROUPS, EVAL_DIR, MASK_DIR, MODEL_DIR, OUT_DIR
from .study import study_masks
from .summary import write_summary
from .textio import collect_progress, log, write_jsonl


def evaluation_data(
    bundles: dict, train_texts: set[str], num_samples: int
) -> tuple[dict[str, dict], dict[str, str]]:
    """The evaluation samples of each set: the next ``num_samples`` usable samples of its
    calibration file after the last one its bundle holds.

    A set is used only when all of them are new text: none is a training text, none is a
    calibration sample of any bundle given (exact text), none repeats another. Returns
    ({set: {"source", "first_example_id", "last_example_id", "texts"}}, {set: why not}).
    """
    files: dict[str, list] = {}
    used_ids: dict[str, set[int]] = {}
    used_texts: set[str] = set()
    sources: dict[str, str] = {}
    for name, bundle in bundles.items():
        args = json.loads(bundle.metadata.get("collect_args") or "{}")
        source = bundle.metadata.get("data_source") or args.get("data")
        samples = list(iter_samples(str(source), text_field=args.get("text_field", "text")))
        ids = {int(i) for i in np.asarray(bundle.example_ids)}
        files[name], used_ids[name], sources[name] = samples, ids, str(source)
        used_texts.update(s.text for s in samples if s.example_id in ids)
    chosen: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name, samples in files.items():
        last = max(used_ids[name])
        rest = [s for s in samples if s.example_id > last]
        if len(rest) < num_samples:
            skipped[name] = (
                f"{len(rest)} samples after the {len(used_ids[name])} its bundle holds "
                f"(needs {num_samples})"
            )
            continue
        picked = rest[:num_samples]
        trained = sum(s.text in train_texts for s in picked)
        calibrated = sum(s.text in used_texts for s in picked)
        repeated = len(picked) - len({s.text for s in picked})
        if trained or calibrated or repeated:
            skipped[name] = (
                f"of the {num_samples} samples after its bundle's, {trained} are training texts, "
                f"{calibrated} are calibration samples of a bundle and {repeated} repeat another"
            )
            continue
        chosen[name] = {
            "source": sources[name],
            "first_example_id": picked[0].example_id,
            "last_example_id": picked[-1].example_id,
            "texts": [s.text for s in picked],
        }
    return chosen, skipped


def evaluate_one(
    model: str | os.PathLike[str],
    data: str | os.PathLike[str],
    masks: list,
    out: str | os.PathLike[str],
    *,
    max_length: int,
    batch_size: int,
    command: str | None = None,
    extra: dict | None = None,
    progress: Callable | None = None,
) -> Path:
    """Evaluate masks through the project's own pipeline (``run_evaluation``) and write the
    result with ``write_evaluation``: exactly what ``lens evaluate --out`` does."""
    config = _eval_config(
        model, data, masks, max_length, batch_size, command=command, extra=dict(extra or {})
    )
    return write_evaluation(out, runner.run_evaluation(config, progress=progress))


def _eval_config(model, data, masks: list, max_length: int, batch_size: int, **more):
    """The evaluation settings every sample evaluation uses (CPU, float32)."""
    return runner.EvaluateConfig.from_settings(
        model=str(model),
        data=str(data),
        masks=list(masks),
        max_length=max_length,
        batch_size=batch_size,
        device="cpu",
        dtype="float32",
        **more,
    )


def evaluation_file(name: str, r: int, main_r: int) -> Path:
    """``eval_<set>.json`` at the main budget; at another, the same name in ``r<r>/`` (a
    folder of its own, so the app and ``predict-vs-actual`` on ``sample_stats/`` never pool
    two budgets)."""
    folder = OUT_DIR if r == main_r else OUT_DIR / f"r{r}"
    return folder / f"eval_{name}.json"


def stage_evaluate(args: argparse.Namespace) -> None:
    """The shipped evaluations: every set with unused held-out text, at ``--r`` and
    ``--study-r2``, over the study's masks (:func:`scripts.sample_build.study.study_masks`:
    every criterion × source, random masks, perturbations of the best mask). Each mask's loss
    increase carries its paired bootstrap interval over the samples. Resumes: an existing
    result is kept unless ``--force``."""
    bundle_paths = [OUT_DIR / f"{n}.safetensors" for n in CALIBRATION_SETS]
    bundle_paths = [p for p in bundle_paths if p.exists()]
    if not bundle_paths:
        raise SystemExit(f"evaluate: no bundles in {OUT_DIR}; run the collect stage first")
    bundles = {p.stem: load_bundle(p) for p in bundle_paths}
    train_texts = {t for texts in training_texts().values() for t in texts}
    chosen, skipped = evaluation_data(bundles, train_texts, args.eval_samples)
    for name, why in skipped.items():
        log(f"evaluate: no evaluation of {name}: {why}")
    if not chosen:
        raise SystemExit("evaluate: no set has enough unused held-out text")
    aimer = aimer_checkpoint_scores(str(MODEL_DIR))
    command = (
        f"scripts/build_sample_stats.py evaluate --r {args.r} --study-r2 {args.study_r2}"
        f" --study-seed {args.study_seed} --eval-samples {args.eval_samples}"
        f" --max-length {args.max_length}"
    )
    budgets = list(dict.fromkeys((args.r, args.study_r2)))
    for r in budgets:
        for name, info in chosen.items():
            out = evaluation_file(name, r, args.r)
            if out.exists() and not args.force:
                log(f"evaluate: {out} exists, skipping")
                continue
            data = EVAL_DIR / f"{name}.jsonl"  # the file stem is the bundle's dataset label
            if args.force or not data.exists():
                write_jsonl(data, info["texts"])
            masks = study_masks(bundles, name, r, seed=args.study_seed, aimer=aimer)
            folder = MASK_DIR / f"r{r}" / name
            paths = [write_mask(folder / f"{stem}.json", mask) for stem, mask in masks.items()]
            t0 = time.time()
            evaluate_one(
                MODEL_DIR,
                data,
                paths,
                out,
                max_length=args.max_length,
                batch_size=args.collect_batch_size,
                command=command,
                extra={
                    "sample_build": "scripts/build_sample_stats.py",
                    "study_r": r,
                    "evaluation_data": {
                        "source": info["source"],
                        "example_ids": [info["first_example_id"], info["last_example_id"]],
                        "rule": (
                            "the samples after the last one the bundle holds; none is a training "
                            "text or a calibration sample of any sample bundle"
                        ),
                    },
                },
                progress=collect_progress(f"evaluate {name} r={r}", busy="evaluating"),
            )
            log(f"evaluate: {out} ({len(paths)} masks) in {time.time() - t0:.0f}s")
    summary_path = OUT_DIR / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    main_paths = [evaluation_file(n, args.r, args.r) for n in chosen]
    section = {
        "r": args.r,
        "samples_per_set": args.eval_samples,
        **prediction_summary(main_paths, bundle_paths),
        "study": study_summary(
            {r: [evaluation_file(n, r, args.r) for n in chosen] for r in budgets},
            bundle_paths,
            DATA_GROUPS,
        ),
        "not_evaluated": skipped,
    }
    summary["evaluation"] = section
    write_summary(summary)
    print_evaluation(section)
