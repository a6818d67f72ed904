"""Build ``sample_stats/``: a small GPT-OSS trained here on real multilingual text.

The command line of ``scripts/build_sample_stats.py``: which stages run, in which
order, with which settings. Each stage is one module of this package.
"""

from __future__ import annotations

import argparse
import os

from . import collection, corpora, design_check, evaluation, summary, tokenizer, training
from .settings import REPO

#: The stages in the order they run; each one skips itself when its output exists.
STAGES = {
    "corpora": corpora.stage_corpora,
    "tokenizer": tokenizer.stage_tokenizer,
    "train": training.stage_train,
    "collect": collection.stage_collect,
    "summary": summary.stage_summary,
    "evaluate": evaluation.stage_evaluate,
    "design": design_check.stage_design,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The default is the string "all", not ["all"]: argparse checks a nargs="*" default
    # against the choices as one value, so a list default failed the bare command.
    ap.add_argument("stages", nargs="*", choices=[*STAGES, "all"], default="all")
    ap.add_argument(
        "--force", action="store_true", help="redo the named stages even if their output exists"
    )
    ap.add_argument("--steps", type=int, default=1200, help="training steps (default 1200)")
    ap.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="stop training after this many seconds (0 = no limit)",
    )
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads for training (0 = torch default)"
    )
    ap.add_argument(
        "--num-samples",
        type=int,
        default=256,
        help="samples per bundle (fewer if a set is smaller)",
    )
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--collect-batch-size", type=int, default=16)
    ap.add_argument("--sets", nargs="*", help="only these calibration sets (collect)")
    ap.add_argument(
        "--r",
        type=int,
        default=8,
        help="mask budget for the summary and the evaluation (default 8 of 32)",
    )
    ap.add_argument(
        "--eval-samples",
        type=int,
        default=128,
        help="evaluation samples per set, taken after the bundle's (default 128)",
    )
    ap.add_argument(
        "--study-r2",
        type=int,
        default=16,
        help="evaluate: the second budget every set is evaluated at (default 16 of 32)",
    )
    ap.add_argument(
        "--study-seed", type=int, default=0, help="evaluate: seed of the random and perturbed masks"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.chdir(REPO)  # paths stored in bundle metadata stay relative to the repo
    stages = list(STAGES) if args.stages == "all" or "all" in args.stages else args.stages
    for name in STAGES:
        if name in stages:
            STAGES[name](args)
