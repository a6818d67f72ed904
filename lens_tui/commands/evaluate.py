"""``lens evaluate`` and ``lens predict-vs-actual``: check the lens's predictions on your model.

``evaluate`` measures what masks really do (loss, perplexity, top-1 agreement
on held-out text, masks applied in memory); ``predict-vs-actual`` sets that
beside what the lens predicted from bundles (retained mass, Jaccard) and
reports the rank correlation. torch is imported only when ``evaluate`` runs.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.engine import Profile
from core.errors import LensError
from core.evaluate.loss_interval import DEFAULT_CI_REPLICATES, DEFAULT_CI_SEED
from core.evaluate.runner import EvaluateConfig, run_evaluation
from core.families import ADAPTERS
from core.formats.bundle import find_bundles, load_bundle
from core.formats.evaluation import (
    Evaluation,
    evaluation_files,
    read_evaluation,
    write_evaluation,
)
from core.formats.mask import MASK_FORMAT, read_mask
from core.io.jsonfile import json_format
from core.io.outputs import check_output, output_error
from core.predict import EvaluationTests, PredictionReport, predict_vs_actual
from core.rank_tests import DEFAULT_PERMUTATIONS, DEFAULT_REPLICATES, DEFAULT_SEED, RankTest
from lens_tui.commands.arguments import (
    BATCH_SIZE,
    MAX_LENGTH,
    SEED,
    FiniteFloatRange,
    count,
)
from lens_tui.commands.collect import ProgressDisplay
from lens_tui.commands.options import model_and_text_options, model_options
from lens_tui.prediction_plot import point_mark, prediction_text, rho_text
from lens_tui.safe_text import shown

PATH = click.Path(path_type=Path)  # existence is checked by the readers, with a clean message


@click.command("evaluate")
@click.argument("extra_masks", metavar="[MASK]...", type=PATH, nargs=-1)
@click.option("--model", "-m", required=True, help="The original model: a folder or a hub id.")
@click.option(
    "--masks",
    "masks",
    type=PATH,
    multiple=True,
    help="Mask files (lens mask) to evaluate; more can follow as plain arguments.",
)
@click.option(
    "--data",
    "-d",
    required=True,
    help="Held-out text: .txt (one sample per line), .jsonl/.json/.parquet, or a `datasets` name.",
)
@click.option(
    "--out",
    "-o",
    type=PATH,
    default=None,
    help="Write the results JSON here (for lens predict-vs-actual and the app).",
)
@click.option("--num-samples", "-n", type=count(), default=None, help="Use the first N samples.")
@click.option(
    "--max-length", type=MAX_LENGTH, default=512, show_default=True, help="Tokens per sample."
)
@click.option(
    "--batch-size", "-b", type=BATCH_SIZE, default=8, show_default=True, help="Samples per pass."
)
@click.option(
    "--dataset-name",
    default=None,
    help="Dataset label recorded (default: the file's stem); match it to the bundle's.",
)
@model_and_text_options
@click.option(
    "--allow-other-model",
    is_flag=True,
    help="Accept masks whose 'model' names another model (layer and expert counts must match).",
)
@click.option(
    "--lm-eval",
    "lm_eval_tasks",
    multiple=True,
    help="Also run this lm-eval task on the original and on each masked model (needs lm-eval).",
)
@click.option(
    "--lm-eval-limit",
    type=FiniteFloatRange(min=0.0, min_open=True),
    default=None,
    help="lm-eval's --limit (examples per task).",
)
@click.option(
    "--lm-eval-include",
    type=PATH,
    multiple=True,
    help="A folder of your own lm-eval task YAMLs (lm-eval's --include_path), e.g. a task over "
    "a local JSONL file.",
)
@click.option(
    "--ci-replicates",
    type=count(0),
    default=DEFAULT_CI_REPLICATES,
    show_default=True,
    help="Bootstrap replicates over held-out samples for each mask's loss_increase_ci "
    "(paired with the original on the same samples); 0 for none.",
)
@click.option(
    "--seed",
    type=SEED,
    default=DEFAULT_CI_SEED,
    show_default=True,
    help="Seed of that bootstrap: the same seed gives the same intervals.",
)
@click.option(
    "--stream-layers",
    is_flag=True,
    help="Load one decoder layer at a time from the checkpoint's safetensors (models larger "
    "than memory); every mask's hidden states wait on disk under TMPDIR.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON on stdout.")
def evaluate_command(extra_masks: tuple[Path, ...], masks: tuple[Path, ...], **options) -> None:
    """Measure what masks do: loss, perplexity and top-1 agreement on held-out text.

    For the original model and for each mask, applied in memory (the dropped
    experts' router logits are forced to −inf, so nothing is written), it
    measures the mean next-token loss over every non-padding token of DATA,
    the perplexity, and how often the masked model's top-1 prediction equals
    the original's. Supported families: FAMILIES. Then compare with the lens's prediction:
    lens predict-vs-actual EVAL.json DATA.safetensors.

    \b
    Examples:
      lens evaluate -m openai/gpt-oss-20b --masks c4-mass.json zh-mass.json -d heldout.jsonl -o eval.json
      lens evaluate -m ./qwen3-30b-a3b --masks reap.json -d wiki.txt -n 256 --max-length 1024 --json
      lens evaluate -m ./my-moe --masks c4-mass.json -d heldout.txt --lm-eval arc_easy --lm-eval-limit 200
    """

    all_masks = list(masks) + list(extra_masks)
    config = EvaluateConfig(
        options=model_options(
            options,
            data=str(options["data"]),
            num_samples=options["num_samples"],
            max_length=options["max_length"],
            batch_size=options["batch_size"],
            dataset_name=options["dataset_name"],
        ),
        masks=all_masks,
        allow_other_model=options["allow_other_model"],
        lm_eval_tasks=tuple(options["lm_eval_tasks"]),
        lm_eval_limit=options["lm_eval_limit"],
        lm_eval_include=tuple(str(p) for p in options["lm_eval_include"]),
        ci_replicates=options["ci_replicates"],
        seed=options["seed"],
        stream_layers=options["stream_layers"],
        command="lens " + shlex.join(sys.argv[1:]),
    )
    if config.options.max_length < 2:
        raise LensError(f"--max-length must be at least 2 (got {config.options.max_length})")
    out = options["out"]
    if out is not None and Path(out).suffix != ".json":
        raise LensError(f"{out}: the results file must end in .json")
    if out is not None:  # before the model loads: a bad --out must not cost an evaluation
        check_output(out, [*all_masks, options["data"], options["model"]])
    with ProgressDisplay() as display:
        evaluation = run_evaluation(config, progress=display)
    if out is not None:
        try:
            write_evaluation(out, evaluation)
        except OSError as exc:
            raise output_error(out, exc) from None
        click.echo(f"wrote {out}", err=True)
    if options["as_json"]:
        click.echo(json.dumps(evaluation.to_json(), allow_nan=False))
    else:
        print_evaluation(evaluation)


def print_evaluation(evaluation: Evaluation) -> None:
    console = Console(highlight=False)
    console.print(
        f"[bold]{shown(evaluation.model)}[/] on [bold]{shown(evaluation.data)}[/]: {evaluation.samples:,} "
        f"samples, {evaluation.tokens:,} next-token predictions"
    )
    table = Table(box=box.SIMPLE_HEAD)
    for name, justify in (
        ("model", "left"),
        ("criterion", "left"),
        ("experts", "right"),
        ("loss", "right"),
        ("ppl", "right"),
        ("Δ loss", "right"),
        ("95% interval", "right"),
        ("agree@1", "right"),
        ("acc@1", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    base = evaluation.baseline
    experts = evaluation.num_layers * evaluation.num_experts
    table.add_row(
        "original",
        "—",
        f"{experts}",
        f"{base['loss']:.4f}",
        f"{base['perplexity']:.3f}",
        "—",
        "—",
        "—",
        f"{base['top1_accuracy']:.1%}",
    )
    for result in evaluation.masks:
        table.add_row(
            shown(result.name),
            shown(result.mask.criterion),
            f"{result.mask.total_kept}",
            f"{result.loss:.4f}",
            f"{result.perplexity:.3f}",
            f"{result.loss_increase:+.4f}",
            _interval_text(result.loss_increase_ci),
            f"{result.top1_agreement:.1%}",
            f"{result.top1_accuracy:.1%}",
        )
    console.print(table)
    harness = [("original", base.get("lm_eval"))] + [
        (r.name, r.extra.get("lm_eval")) for r in evaluation.masks
    ]
    for name, results in harness:
        if results:
            for task, metrics in results.items():
                values = ", ".join(
                    f"{shown(k)} {v:.4f}"
                    for k, v in metrics.items()
                    if "stderr" not in k and isinstance(v, (int, float))
                )
                console.print(f"lm-eval {shown(task)} \\[{shown(name)}]: {values}")


def _interval_text(ci: tuple[float, float] | list[float] | None, fmt: str = "+.4f") -> str:
    return "—" if ci is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _data_groups(values: tuple[str, ...]) -> dict[str, str]:
    """``--group LABEL=GROUP`` options as a mapping (a bad one is one LensError line)."""
    groups = {}
    for value in values:
        label, sep, group = value.partition("=")
        if not sep or not label or not group:
            raise LensError(f"--group {value!r}: expected LABEL=GROUP, e.g. news_en=en")
        groups[label] = group
    return groups


@click.command("predict-vs-actual")
@click.argument("paths", type=PATH, nargs=-1, required=True)
@click.option(
    "--reference",
    type=PATH,
    default=None,
    help="Jaccard of every mask to this mask (default: the evaluation data's own proxy mask "
    "with as many experts per layer).",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="LABEL=GROUP",
    help="Put dataset LABEL in GROUP (language and domain, e.g. news_en=en wiki_en=en): the "
    "'same_data' group of an evaluation is the masks whose every source is of its data's group "
    "(default: of its very dataset label).",
)
@click.option(
    "--replicates",
    type=count(2),
    default=DEFAULT_REPLICATES,
    show_default=True,
    help="Bootstrap replicates over masks for each predictor's ρ interval.",
)
@click.option(
    "--permutations",
    type=count(1),
    default=DEFAULT_PERMUTATIONS,
    show_default=True,
    help="Permutations for each predictor's p-value.",
)
@click.option("--seed", type=SEED, default=DEFAULT_SEED, show_default=True, help="Seed of both.")
@click.option("--no-plot", is_flag=True, help="Only the table, no scatter plot.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
def predict_command(
    paths: tuple[Path, ...],
    reference: Path | None,
    groups: tuple[str, ...],
    replicates: int,
    permutations: int,
    seed: int,
    no_plot: bool,
    as_json: bool,
) -> None:
    """Did the lens predict the pruning outcome? Predicted vs measured, per mask.

    PATHS are evaluation results (lens evaluate --out), bundles of the
    evaluation data, folders holding either, and optionally mask files to
    show only those masks. For every evaluated mask it shows the share of the
    evaluation data's routing mass the mask keeps (the lens's prediction,
    from the bundle alone) and its Jaccard overlap with a reference mask,
    beside the loss increase that was measured, plus the Spearman rank
    correlation over masks. A negative ρ(retained mass, loss increase) means
    the lens ordered the masks right.

    \b
    Examples:
      lens predict-vs-actual eval.json heldout.safetensors
      lens predict-vs-actual eval-en.json eval-zh.json sample_stats/ --json
      lens predict-vs-actual runs/            # every bundle and evaluation in runs/
      lens predict-vs-actual eval.json heldout.safetensors --reference c4-mass.json
    """
    evaluations, bundle_paths, mask_paths = _classify(paths)
    if not evaluations:
        raise LensError("no evaluation file given (the JSON written by lens evaluate --out)")
    profiles = [Profile(load_bundle(p)) for p in find_bundles(bundle_paths)]
    only = _selected_masks(mask_paths, evaluations)
    ref = read_mask(reference) if reference is not None else None
    report = predict_vs_actual(
        evaluations,
        profiles,
        reference=ref,
        only=only,
        data_groups=_data_groups(groups),
        replicates=replicates,
        permutations=permutations,
        seed=seed,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), allow_nan=False))
        return
    print_prediction(report, plot=not no_plot)


def _classify(paths: tuple[Path, ...]) -> tuple[list[Evaluation], list[Path], list[Path]]:
    """Evaluation files, bundle paths and mask files among PATHS (JSON told apart by format;
    a folder gives its bundles and the evaluation results lying in it)."""
    evaluations, bundles, masks = [], [], []
    for path in paths:
        if path.is_dir():
            bundles.append(path)
            evaluations.extend(read_evaluation(p) for p in evaluation_files([path]))
        elif path.suffix != ".json":
            bundles.append(path)
        elif json_format(path) == MASK_FORMAT:  # anything else: read_evaluation says what is wrong
            masks.append(path)
        else:
            evaluations.append(read_evaluation(path))
    return evaluations, bundles, masks


def _selected_masks(mask_paths: list[Path], evaluations: list[Evaluation]) -> list[str] | None:
    """Names of the evaluated masks matching the given mask files (which must be unchanged)."""
    if not mask_paths:
        return None
    names = []
    for path in mask_paths:
        mask = read_mask(path)
        found = [
            result
            for evaluation in evaluations
            for result in evaluation.masks
            if result.mask.path is not None and _same_file(result.mask.path, path)
        ]
        if not found:
            raise LensError(
                f"{path}: this mask is in none of the evaluations given; evaluate it first"
            )
        if any(result.mask.layers != mask.layers for result in found):
            raise LensError(f"{path}: the mask changed since it was evaluated; evaluate it again")
        names.extend(result.name for result in found)
    return names


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if pct else f"{value:.3f}"


def print_prediction(report: PredictionReport, plot: bool = True) -> None:
    console = Console(highlight=False)
    datasets = list(dict.fromkeys(p.dataset for p in report.points))
    several = len(datasets) > 1
    on = "" if several else f" on {shown(datasets[0])}"
    table = Table(
        title=f"predicted (lens) vs measured (evaluate){on}; Jaccard to {shown(report.reference)}",
        box=box.SIMPLE_HEAD,
    )
    columns = (
        ["#"] + (["data"] if several else []) + ["mask", "criterion", "mass kept", "worst", "rel"]
    )
    for name in columns + ["Jaccard", "Δ loss", "agree@1"]:
        left = name in ("data", "mask", "criterion")
        table.add_column(name, justify="left" if left else "right")
    for number, p in enumerate(report.points, start=1):
        table.add_row(
            point_mark(number),
            *([shown(p.dataset)] if several else []),
            shown(p.mask),
            shown(p.criterion),
            _fmt(p.retained_mass, pct=True),
            _fmt(p.retained_mass_min, pct=True),
            _fmt(p.retained_mass_rel, pct=True),
            _fmt(p.jaccard),
            f"{p.loss_increase:+.4f}",
            f"{p.top1_agreement:.1%}",
        )
    console.print(table)
    console.print(
        f"Spearman ρ over {len(report.points)} masks: retained mass vs loss increase "
        f"{rho_text(report.rho_retained_mass)}, Jaccard vs loss increase "
        f"{rho_text(report.rho_jaccard)} (negative = the lens ordered the masks right)"
    )
    console.print(shown(report.verdict))
    for tests in report.evaluations:
        console.print(predictor_table(tests))
    if plot and any(p.retained_mass is not None for p in report.points):
        width = max(40, min(console.width, 120))
        text = prediction_text(report, width=width, height=20, color=console.is_terminal)
        console.print(Text.from_ansi(text), soft_wrap=True)


def predictor_table(tests: EvaluationTests) -> Table:
    """ρ [95 % interval] and p of every predictor, over all masks and within each group."""
    group_names = list(dict.fromkeys(g for p in tests.predictors for g in p.groups))
    table = Table(
        title=f"predictors vs loss increase on {shown(tests.evaluation)} (ρ [95% interval] p; "
        "negative = right)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("predictor", justify="left")
    n_all = tests.predictors[0].overall.n if tests.predictors else 0
    table.add_column(f"all ({n_all})", justify="right")
    for group in group_names:
        n = next(p.groups[group].n for p in tests.predictors if group in p.groups)
        table.add_column(f"{shown(group)} ({n})", justify="right")
    for predictor in tests.predictors:
        cells = [_test_text(predictor.overall)]
        cells += [_test_text(predictor.groups.get(group)) for group in group_names]
        table.add_row(predictor.name, *cells)
    return table


def _test_text(test: RankTest | None) -> str:
    if test is None or test.spearman is None:
        return "—"
    return f"{test.spearman:+.2f} {_interval_text(test.ci, '+.2f')} p={test.p_value:.3f}"


evaluate_command.help = (evaluate_command.help or "").replace(
    "FAMILIES", ", ".join(a.label for a in ADAPTERS if a.masks_in_memory)
)

COMMANDS = [evaluate_command, predict_command]
