"""Stage 7 (``design``): is ``lens design``'s calibration set better on the model, not only
on the proxy? (issue 18)

The targets are the sets with held-out evaluation text (the ``evaluate`` stage's), the
candidates every sample bundle. ``core.design`` chooses a concrete list of sequences that
keeps the most routing mass of the worst-served target; its mask is then measured with the
project's own evaluation (exactly ``lens evaluate``) against the mask of the best single
candidate, at the same r, on the held-out text of every target. Both losses carry their
paired bootstrap intervals over the evaluation samples. The result goes to
``summary.json`` under ``design_validation``, whatever it says.
"""

from __future__ import annotations

import argparse
import json
import time

from core.design import design
from core.engine import Profile
from core.formats.bundle import load_bundle
from core.formats.evaluation import read_evaluation
from core.formats.mask import write_mask
from core.masks.make import make_mask

from .evaluation import evaluate_one, evaluation_data
from .mix import training_texts
from .settings import CALIBRATION_SETS, EVAL_DIR, MASK_DIR, MODEL_DIR, OUT_DIR, WORK
from .summary import write_summary
from .textio import collect_progress, log

DESIGN_DIR = WORK / "design"  # the two masks and their evaluations (not shipped)


def _rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def stage_design(args: argparse.Namespace) -> None:
    paths = [OUT_DIR / f"{n}.safetensors" for n in CALIBRATION_SETS]
    paths = [p for p in paths if p.exists()]
    if not paths:
        raise SystemExit(f"design: no bundles in {OUT_DIR}; run the collect stage first")
    bundles = {p.stem: load_bundle(p) for p in paths}
    train_texts = {t for texts in training_texts().values() for t in texts}
    chosen, _ = evaluation_data(bundles, train_texts, args.eval_samples)
    if not chosen:
        raise SystemExit("design: no set has held-out evaluation text; run the evaluate stage")
    profiles = {name: Profile(b) for name, b in bundles.items()}
    targets = [profiles[n] for n in chosen]
    # Candidates in file-name order: what `lens design --candidates sample_stats/*.safetensors`
    # gives them (the greedy selection breaks ties in the candidates' order).
    candidates = [profiles[n] for n in sorted(profiles)]
    result = design(candidates, targets, r=args.r)
    singles = {k: v for k, v in result.baselines.items() if k != "uniform"}
    best = max(singles, key=lambda k: singles[k].key)
    masks = {
        "designed": write_mask(MASK_DIR / "design" / "designed.json", result.selection_mask()),
        "best_single": write_mask(
            MASK_DIR / "design" / f"{best}-mass.json", make_mask("mass", [bundles[best]], r=args.r)
        ),
    }
    per_target = {}
    for name in chosen:
        out = DESIGN_DIR / f"eval_{name}.json"
        data = EVAL_DIR / f"{name}.jsonl"
        if not data.exists():
            raise SystemExit(f"design: {data} is missing; run the evaluate stage first")
        if args.force or not out.exists():
            t0 = time.time()
            evaluate_one(
                MODEL_DIR,
                data,
                list(masks.values()),
                out,
                max_length=args.max_length,
                batch_size=args.collect_batch_size,
                command=f"scripts/build_sample_stats.py design --r {args.r}",
                extra={"sample_build": "scripts/build_sample_stats.py", "design_check": True},
                progress=collect_progress(f"design {name}", busy="evaluating"),
            )
            log(f"design: {out} in {time.time() - t0:.0f}s")
        evaluation = read_evaluation(out)
        rows = {r.name: r for r in evaluation.masks}
        per_target[name] = {
            "baseline_loss": _rounded(evaluation.baseline["loss"]),
            **{
                label: {
                    "loss_increase": _rounded(rows[path.stem].loss_increase),
                    "loss_increase_ci": [_rounded(x) for x in rows[path.stem].loss_increase_ci]
                    if rows[path.stem].loss_increase_ci
                    else None,
                }
                for label, path in masks.items()
            },
        }
    section = {
        "r": args.r,
        "targets": list(chosen),
        "candidates": list(profiles),
        "sequences": result.sequences,
        "best_single_candidate": best,
        "proxy": {
            "designed": result.selection.score.to_json(),
            "best_single": singles[best].to_json(),
            "uniform": result.baselines["uniform"].to_json(),
        },
        "evaluation": per_target,
    }
    summary_path = OUT_DIR / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary["design_validation"] = section
    write_summary(summary)
    print_design(section)


def print_design(section: dict) -> None:
    """The validation as a markdown table (pasted into sample_stats/README.md)."""
    proxy = section["proxy"]
    print(
        f"\ndesign over {len(section['candidates'])} candidates, targets "
        f"{', '.join(section['targets'])}, r = {section['r']}, {section['sequences']} sequences;"
        f" best single candidate: {section['best_single_candidate']}\n"
    )
    print(
        "| target | proxy: designed | proxy: best single | Δ loss designed [95 % CI] | Δ loss best single [95 % CI] |"
    )
    print("|---|--:|--:|---|---|")
    for name, row in section["evaluation"].items():
        cells = []
        for label in ("designed", "best_single"):
            d = row[label]
            lo, hi = d["loss_increase_ci"] or (float("nan"), float("nan"))
            cells.append(f"{d['loss_increase']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        print(
            f"| `{name}` | {proxy['designed']['per_target'][name]:.3f} | "
            f"{proxy['best_single']['per_target'][name]:.3f} | {cells[0]} | {cells[1]} |"
        )
