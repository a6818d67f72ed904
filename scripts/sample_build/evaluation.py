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
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from core.collect.data import iter_samples
from core.engine import Profile
from core.evaluate import runner
from core.formats.bundle import load_bundle
from core.formats.evaluation import write_evaluation
from core.formats.mask import write_mask
from core.masks.make import make_mask
from core.predict import predict_vs_actual
from core.prune.aimer import aimer_checkpoint_scores

from .mix import training_texts
from .prediction import prediction_summary, print_evaluation, spearman_rhos
from .settings import CALIBRATION_SETS, EVAL_CRITERIA, EVAL_DIR, MASK_DIR, MODEL_DIR, OUT_DIR
from .study import STUDY_DIR, study_masks
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


def evaluation_masks(bundles: dict, sets: Iterable[str], r: int, folder: Path) -> dict[str, list]:
    """Masks at ``r`` experts per layer, made with ``core.masks`` and written to ``folder``.

    Every set an evaluation gets: each bundle's ``mass`` mask (its own among them),
    the other criteria of its own bundle, ``coverage`` over all bundles and the
    calibration-free ``aimer`` of the checkpoint. Returns {set: [mask paths]}.
    """

    def written(stem: str, mask) -> Path:
        return write_mask(folder / f"{stem}.json", mask)

    mass = [written(f"{n}-mass", make_mask("mass", [b], r=r)) for n, b in bundles.items()]
    shared = [
        written("coverage", make_mask("coverage", list(bundles.values()), r=r)),
        written("aimer", make_mask("aimer", aimer=aimer_checkpoint_scores(str(MODEL_DIR)), r=r)),
    ]
    out = {}
    for name in sets:
        own = [written(f"{name}-{c}", make_mask(c, [bundles[name]], r=r)) for c in EVAL_CRITERIA]
        out[name] = [*mass, *own, *shared]
    return out


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


def evaluate_halves(
    name: str, texts: list[str], masks: list, profiles: list, *, max_length: int, batch_size: int
) -> list[dict]:
    """The same evaluation on each half of the samples (in memory, nothing shipped): does the
    ordering of the masks hold on half the data, or is it noise?"""
    half = len(texts) // 2
    out = []
    for i, part in enumerate((texts[:half], texts[half:]), start=1):
        data = EVAL_DIR / f"half{i}" / f"{name}.jsonl"  # same stem: pairs with the same bundle
        write_jsonl(data, part)
        config = _eval_config(MODEL_DIR, data, masks, max_length, batch_size)
        evaluation = runner.run_evaluation(config)
        report = predict_vs_actual([evaluation], profiles)
        out.append(
            {
                "samples": evaluation.samples,
                "tokens": evaluation.tokens,
                "baseline_loss": round(evaluation.baseline["loss"], 4),
                "spearman": spearman_rhos(report),
                "loss_increase": {p.mask: round(p.loss_increase, 4) for p in report.points},
            }
        )
    return out


def stage_evaluate(args: argparse.Namespace) -> None:
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
    todo = [n for n in chosen if args.force or not (OUT_DIR / f"eval_{n}.json").exists()]
    for name in chosen:
        if name not in todo:
            log(f"evaluate: {OUT_DIR / f'eval_{name}.json'} exists, skipping")
    masks = evaluation_masks(bundles, todo, args.r, MASK_DIR) if todo else {}
    summary_path = OUT_DIR / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    previous = summary.get("evaluation", {}).get("sets", {})
    halves = {n: previous[n]["halves"] for n in chosen if "halves" in previous.get(n, {})}
    profiles = None
    command = (
        f"scripts/build_sample_stats.py evaluate --r {args.r} --eval-samples {args.eval_samples}"
        f" --max-length {args.max_length}"
    )
    for name in todo:
        info = chosen[name]
        data = EVAL_DIR / f"{name}.jsonl"  # the file stem is the bundle's dataset label
        if args.force or not data.exists():
            write_jsonl(data, info["texts"])
        t0 = time.time()
        out = evaluate_one(
            MODEL_DIR,
            data,
            masks[name],
            OUT_DIR / f"eval_{name}.json",
            max_length=args.max_length,
            batch_size=args.collect_batch_size,
            command=command,
            extra={
                "sample_build": "scripts/build_sample_stats.py",
                "evaluation_data": {
                    "source": info["source"],
                    "example_ids": [info["first_example_id"], info["last_example_id"]],
                    "rule": (
                        "the samples after the last one the bundle holds; none is a training "
                        "text or a calibration sample of any sample bundle"
                    ),
                },
            },
            progress=collect_progress(f"evaluate {name}", busy="evaluating"),
        )
        log(f"evaluate: {out} ({len(masks[name])} masks) in {time.time() - t0:.0f}s")
        if profiles is None:
            profiles = [Profile.load(p) for p in bundle_paths]
        halves[name] = evaluate_halves(
            name,
            info["texts"],
            masks[name],
            profiles,
            max_length=args.max_length,
            batch_size=args.collect_batch_size,
        )
    eval_paths = [OUT_DIR / f"eval_{n}.json" for n in chosen]
    section = {
        "r": args.r,
        "samples_per_set": args.eval_samples,
        **prediction_summary(eval_paths, bundle_paths),
        "not_evaluated": skipped,
    }
    for name, parts in halves.items():
        section["sets"][name]["halves"] = parts
    summary["evaluation"] = section
    write_summary(summary)
    print_evaluation(section)
    if getattr(args, "study", False):
        stage_study(args, bundles, chosen)


def stage_study(args: argparse.Namespace, bundles: dict, chosen: dict[str, dict]) -> list[Path]:
    """The predictor study (``--study``): every set with held-out text, at ``--r`` and
    ``--study-r2``, over :func:`scripts.sample_build.study.study_masks`; evaluations go to
    ``STUDY_DIR`` (``eval_<set>_r<r>.json``), masks beside them. Resumes: an existing result is
    kept unless ``--force``."""
    aimer = aimer_checkpoint_scores(str(MODEL_DIR))
    written = []
    for r in dict.fromkeys((args.r, args.study_r2)):
        for name in chosen:
            out = STUDY_DIR / f"eval_{name}_r{r}.json"
            if out.exists() and not args.force:
                log(f"study: {out} exists, skipping")
                written.append(out)
                continue
            data = EVAL_DIR / f"{name}.jsonl"
            if not data.exists():
                write_jsonl(data, chosen[name]["texts"])
            masks = study_masks(bundles, name, r, seed=args.study_seed, aimer=aimer)
            folder = STUDY_DIR / "masks" / name
            paths = [write_mask(folder / f"{stem}.json", m) for stem, m in masks.items()]
            t0 = time.time()
            written.append(
                evaluate_one(
                    MODEL_DIR,
                    data,
                    paths,
                    out,
                    max_length=args.max_length,
                    batch_size=args.collect_batch_size,
                    command=f"scripts/build_sample_stats.py evaluate --study --r {args.r} "
                    f"--study-r2 {args.study_r2} --study-seed {args.study_seed}",
                    extra={"sample_build": "scripts/build_sample_stats.py", "study_r": r},
                    progress=collect_progress(f"study {name} r={r}", busy="evaluating"),
                )
            )
            log(f"study: {out} ({len(paths)} masks) in {time.time() - t0:.0f}s")
    return written
