"""``lens stats``, ``lens compare``, ``lens ablate``, ``lens matrix``: the analysis commands.

Each one loads bundles into the ``core`` engine and prints either rich tables
(default) or exactly one JSON document (``--json``, docs/formats.md §JSON output).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from core import metrics as m
from core import uncertainty as u
from core.ablation import DEFAULT_CONVERGENCE, ablate, ablate_shuffled
from core.engine import Profile, compare, stats, verdict
from core.errors import LensError
from core.formats.bundle import find_bundles, load_bundle
from core.formats.evaluation import evaluation_files, read_evaluation
from core.matrix import matrix
from core.predictor_choice import PredictorChoice, evidence_choice, verdict_basis
from lens_tui import render
from lens_tui.commands.arguments import SEED, FiniteFloatRange, count

BUNDLE = click.Path(path_type=Path)  # existence is checked by the loader, with a clean message

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document (docs/formats.md §JSON output) instead of tables.",
)
tau_option = click.option(
    "--tau",
    type=FiniteFloatRange(min=0.0, max=1.0),
    default=m.DEFAULT_TAU,
    show_default=True,
    help="Sparsity threshold: an expert with mass below τ counts as unused.",
)
r_option = click.option(
    "--r",
    "r",
    type=int,
    required=True,
    help="Experts kept per layer (1..E): the pruning budget the masks are taken at.",
)


def ci_options(command):
    """``--ci``, ``--replicates``, ``--level``, ``--seed``: bootstrap intervals (core.uncertainty)."""
    for option in reversed(
        [
            click.option(
                "--ci",
                is_flag=True,
                help="Add bootstrap intervals (resampling whole sequences) to every metric.",
            ),
            click.option(
                "--replicates",
                type=int,
                default=u.DEFAULT_REPLICATES,
                show_default=True,
                help="Bootstrap replicates (and, in compare, permutations of the test).",
            ),
            click.option(
                "--level",
                type=float,
                default=u.DEFAULT_LEVEL,
                show_default=True,
                help="Coverage of the percentile intervals, between 0 and 1.",
            ),
            click.option(
                "--seed",
                type=int,
                default=u.DEFAULT_SEED,
                show_default=True,
                help="Seed of the resampling: the same seed gives the same intervals.",
            ),
        ]
    ):
        command = option(command)
    return command


def emit_json(document: dict) -> None:
    click.echo(json.dumps(document, allow_nan=False))


@click.command("stats")
@click.argument("bundle", type=BUNDLE)
@tau_option
@ci_options
@json_option
def stats_command(
    bundle: Path, tau: float, ci: bool, replicates: int, level: float, seed: int, as_json: bool
) -> None:
    """Univariate metrics of one bundle, per layer and as whole-model means.

    \b
    Sparsity (% of experts below τ), variance of the expert masses, the
    effective number of experts N_eff = 1/Σp² and the routing entropy in bits.

    \b
    Examples:
      lens stats sample_stats/news_en.safetensors
      lens stats c4.safetensors --tau 0.005 --json | jq .mean
      lens stats news_en.safetensors --ci --replicates 500 --level 0.9
    """
    if ci:
        u.check_options(replicates, level)
    profile = Profile.load(bundle)
    report = stats(profile, tau)
    intervals = u.bootstrap_stats(profile, tau, replicates, level, seed).to_json() if ci else None
    if as_json:
        document = report.to_json()
        if intervals is not None:
            document["ci"] = intervals
        emit_json(document)
    else:
        render.print_stats(report, intervals)


@click.command("compare")
@click.argument("bundle_a", type=BUNDLE)
@click.argument("bundle_b", type=BUNDLE)
@r_option
@tau_option
@ci_options
@click.option(
    "--evidence",
    type=BUNDLE,
    multiple=True,
    metavar="EVAL|FOLDER",
    help="Evaluation results (lens evaluate --out), or folders holding them and bundles of their "
    "data: the verdict uses the predictor they validate among similar masks, if any "
    '(docs/formats.md §Predictor behind the verdict); --json then adds "predictor".',
)
@json_option
def compare_command(
    bundle_a: Path,
    bundle_b: Path,
    r: int,
    tau: float,
    ci: bool,
    replicates: int,
    level: float,
    seed: int,
    evidence: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Compare calibration sets A and B at budget r: would they keep the same experts?

    \b
    Per layer and as means: JS divergence of the routing distributions (bits,
    0 = identical), Jaccard of the two top-r proxy masks, Pearson of the
    feature energies, and the retained mass: how much of B's routing mass the
    mask calibrated on A keeps (and the reverse), absolute and relative to the
    best top-r mask of B. Relative retained mass of 95 % or more: A is a safe
    surrogate for B.

    With --ci, every value gets a bootstrap interval and a permutation test
    (--replicates random splits of A ∪ B) says whether A and B differ beyond
    resampling noise. With --evidence, a predictor that the evaluations
    validate among masks of similar data (ρ interval below 0 in each) makes
    the surrogate call instead, and the verdict names it.

    \b
    Examples:
      lens compare c4.safetensors zh.safetensors --r 24
      lens compare a.safetensors b.safetensors --r 16 --json | jq .mean.jaccard
      lens compare a.safetensors b.safetensors --r 16 --ci --json | jq .difference
      lens compare sample_stats/news_en.safetensors sample_stats/wiki_en.safetensors --r 8 \\
          --evidence sample_stats/ --json | jq .predictor
    """
    if ci:
        u.check_options(replicates, level)
    a, b = Profile.load(bundle_a), Profile.load(bundle_b)
    result = compare(a, b, r, tau)
    basis = verdict_basis(_evidence_choice(evidence, a, b), a, b, r)
    intervals = difference = None
    if ci:
        intervals = u.bootstrap_compare(a, b, r, tau, replicates, level, seed)
        difference = u.permutation_test(a, b, r, replicates, seed)
    if as_json:
        document = result.to_json()
        if intervals is not None and difference is not None:
            document["ci"] = intervals.to_json()
            document["difference"] = difference.to_json()
        if evidence:
            document["predictor"] = basis.to_json()
        emit_json(document)
    else:
        render.print_comparison(
            result,
            verdict(result, difference, basis),
            None if intervals is None else intervals.to_json(),
            None if difference is None else difference.to_json(),
        )


def _evidence_choice(paths: tuple[Path, ...], a: Profile, b: Profile) -> PredictorChoice:
    """The predictor the evaluations among ``paths`` validate (their data's bundles: those in
    the folders given, and A and B themselves); none validated without ``paths``."""
    if not paths:
        return PredictorChoice(None)
    for path in paths:
        if not path.exists():
            raise LensError(f"{path}: no such file or folder (--evidence)")
    evaluations = [read_evaluation(p) for p in evaluation_files(list(paths))]
    if not evaluations:
        names = ", ".join(str(p) for p in paths)
        raise LensError(f"--evidence {names}: no evaluation results (lens evaluate --out) there")
    folders = [p for p in paths if p.is_dir()]
    profiles = (
        [a, b, *(Profile(load_bundle(p)) for p in find_bundles(folders))] if folders else [a, b]
    )
    return evidence_choice(evaluations, profiles)


@click.command("ablate")
@click.argument("bundle", type=BUNDLE)
@r_option
@click.option(
    "--step", type=count(), default=8, show_default=True, help="Sequences added per checkpoint."
)
@click.option(
    "--max",
    "max_samples",
    type=count(),
    default=None,
    help="Largest sequence count (default: all samples).",
)
@click.option(
    "--seed", type=SEED, default=None, help="Shuffle the sample order with this seed first."
)
@click.option(
    "--threshold",
    type=FiniteFloatRange(0.0, 1.0),
    default=DEFAULT_CONVERGENCE,
    show_default=True,
    help="Convergence: the first count from which Jaccard to the final mask stays at or above this.",
)
@click.option(
    "--shuffles",
    type=int,
    default=None,
    help="Also repeat over this many random orders (from --seed, default 0) and report the "
    "convergence count's median and range.",
)
@json_option
def ablate_command(
    bundle: Path,
    r: int,
    step: int,
    max_samples: int | None,
    seed: int | None,
    threshold: float,
    shuffles: int | None,
    as_json: bool,
) -> None:
    """How many calibration sequences until the mask stops changing?

    Takes the first n = step, 2·step, … sequences (up to --max) and compares
    the top-r mask at each count with the final one (to_final) and with the
    previous one (stepwise), as Jaccard averaged over layers.

    \b
    Examples:
      lens ablate c4.safetensors --r 24 --step 2 --max 128
      lens ablate c4.safetensors --r 24 --step 16 --seed 0 --json
      lens ablate c4.safetensors --r 24 --step 8 --shuffles 20
    """
    profile = Profile.load(bundle)
    result = ablate(profile, r, step, max_samples, seed)
    spread = None
    if shuffles is not None:
        spread = ablate_shuffled(profile, r, step, max_samples, shuffles, seed).to_json(threshold)
    if as_json:
        document = result.to_json(threshold)
        if spread is not None:
            document["shuffled"] = spread
        emit_json(document)
    else:
        render.print_ablation(result, threshold, spread)


@click.command("matrix")
@click.argument("paths", type=BUNDLE, nargs=-1, required=True)
@r_option
@json_option
def matrix_command(paths: tuple[Path, ...], r: int, as_json: bool) -> None:
    """N-way comparison: mean JS, Jaccard@r and retained mass for every pair.

    PATHS are bundle files or folders of bundles. Retained mass is read as
    row → column: how much of the column dataset's routing mass the mask
    calibrated on the row dataset keeps.

    \b
    Examples:
      lens matrix sample_stats/ --r 8
      lens matrix c4.safetensors zh.safetensors code.safetensors --r 24 --json
    """
    profiles = [Profile.load(p) for p in find_bundles(list(paths))]
    result = matrix(profiles, r)
    if as_json:
        emit_json(result.to_json())
    else:
        render.print_matrix(result)


COMMANDS = [stats_command, compare_command, ablate_command, matrix_command]
