"""``lens mask`` and ``lens masks-compare``: pruning masks from any criterion, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from core.errors import LensError
from core.formats.bundle import find_bundles, load_bundle
from core.formats.mask import Mask, read_mask, write_mask
from core.io.atomic import atomic_write_text
from core.io.outputs import check_output, output_error
from core.masks.compare import MasksComparison, compare_masks, masks_for_criteria
from core.masks.criteria import CRITERIA, AimerScores, NaeeScores
from core.masks.make import make_mask, retained_mass_by_source
from core.masks.serving import SERVING_FORMATS, plain_lists, vllm_approximate_experts
from core.naee.search import MAX_SUBSETS
from core.prune.aimer import aimer_checkpoint_scores
from core.prune.checkpoint import Checkpoint
from lens_tui.commands.arguments import count
from lens_tui.commands.options import model_and_text_options, model_options
from lens_tui.safe_text import shown

BUNDLE = click.Path(path_type=Path)  # existence is checked by the loaders, with a clean message

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document instead of tables."
)
r_option = click.option("--r", "r", type=int, default=None, help="Experts kept in every layer.")
budget_option = click.option(
    "--budget",
    type=int,
    default=None,
    help="Experts kept in total over all layers, distributed by score (never below top-k a layer).",
)
model_option = click.option(
    "--model",
    "-m",
    default=None,
    help="Checkpoint folder or hub id, for 'aimer' (weights only) and 'naee' (with --data).",
)


def _aimer_scores(model: str | None, wanted: bool) -> AimerScores | None:
    """The checkpoint's AIMER scores when the 'aimer' criterion is wanted and --model given.

    Masks receive the scores; reading the weights is pruning's job (core.prune.aimer).
    Without --model, make_mask says that 'aimer' needs it.
    """
    return aimer_checkpoint_scores(model) if wanted and model is not None else None


def _naee_scores(model: str | None, r: int | None, budget: int | None, options: dict) -> NaeeScores:
    """Run NAEE's search (torch) with a progress bar on stderr; masks receive the scores."""
    if model is None or not options.get("data"):
        raise LensError(
            "criterion 'naee' runs the model on calibration text: pass --model and --data"
        )
    if r is None or budget is not None:
        raise LensError("criterion 'naee' searches each layer for --r experts (no --budget)")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from core.naee.runner import NaeeProgress, run_naee  # lazy: loads torch when it runs

    settings = model_options(
        {"model": model, **options},
        data=str(options["data"]),
        num_samples=options["num_samples"],
        max_length=options["max_length"],
        batch_size=options["batch_size"],
    )
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task("naee: loading", total=None)

    def show(event: NaeeProgress) -> None:
        if event.stage == "search":
            bar.update(
                task,
                description=f"naee: layer {event.layer + 1}/{event.layers} ({event.method})",
                completed=event.done,
                total=event.total,
            )
        elif event.stage == "inputs":
            bar.update(
                task,
                description=f"naee: layer {event.layer + 1}/{event.layers} inputs",
                completed=0,
                total=None,
            )

    with bar:
        return run_naee(
            settings,
            int(r),
            search=str(options["naee_search"]),
            report_gap=bool(options["naee_gap"]),
            progress=show,
        )


def _criteria_help() -> str:
    return "; ".join(f"{c.name}: {c.summary}" for c in CRITERIA.values())


@click.command("mask")
@click.argument("bundles", type=BUNDLE, nargs=-1)
@click.option(
    "--criterion",
    "-c",
    type=click.Choice(list(CRITERIA)),
    default="mass",
    show_default=True,
    help="How experts are scored. " + _criteria_help() + ".",
)
@r_option
@budget_option
@click.option(
    "--min-per-layer",
    type=count(),
    default=None,
    help="With --budget: the fewest experts any layer keeps (default: the model's top-k).",
)
@click.option(
    "--groups",
    type=count(),
    default=1,
    show_default=True,
    help="With --r: keep r/G experts in each of G equal groups of experts (DeepSeek-V3: its "
    "n_group), so group-limited routing stays the same after pruning.",
)
@model_option
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), required=True, help="The mask file to write."
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(SERVING_FORMATS),
    default="json",
    show_default=True,
    help="json: the lens mask (for lens prune/evaluate); plain: kept ids per MoE layer, one line "
    "each (.txt); vllm: vLLM's approximate_experts object, dropped ids per decoder layer (.json, "
    "needs --model for the layer numbers).",
)
@click.option(
    "--data",
    "-d",
    default=None,
    help="'naee': calibration text (.txt, .jsonl/.json/.parquet or a `datasets` name).",
)
@click.option("--num-samples", "-n", type=int, default=None, help="'naee': the first N samples.")
@click.option(
    "--max-length", type=int, default=512, show_default=True, help="'naee': tokens per sample."
)
@click.option(
    "--batch-size", "-b", type=int, default=8, show_default=True, help="'naee': samples per pass."
)
@click.option(
    "--naee-search",
    type=click.Choice(["auto", "exact", "greedy"]),
    default="auto",
    show_default=True,
    help=f"'naee': every kept set (auto: when C(E, r) <= {MAX_SUBSETS:,}) or greedy "
    "backward elimination.",
)
@click.option(
    "--naee-gap",
    is_flag=True,
    help="'naee' greedy: also enumerate where feasible and record the objective gap.",
)
@model_and_text_options
@json_option
def mask_command(
    bundles: tuple[Path, ...],
    criterion: str,
    r: int | None,
    budget: int | None,
    min_per_layer: int | None,
    groups: int,
    model: str | None,
    out: Path,
    out_format: str,
    as_json: bool,
    **options: object,
) -> None:
    """Write a pruning mask: the experts to keep in every MoE layer.

    BUNDLES are calibration bundles (files or folders); all their samples are
    pooled, except for 'coverage', which takes each bundle's best experts in
    turn. Give --r to keep the same number in every layer, or --budget to keep
    that many in total, spread over layers by score. 'aimer' needs no data,
    only --model. 'naee' reads no bundle: it runs --model on --data (-n,
    --max-length, --batch-size and the lens collect model options apply) and
    searches each layer for the --r experts that change the MoE block's output
    least, with a progress bar on stderr. A criterion whose statistic a bundle
    lacks says which one.

    \b
    Examples:
      lens mask c4.safetensors --r 24 --out c4-mass.json
      lens mask c4.safetensors --criterion reap --budget 768 --out c4-reap.json
      lens mask c4.safetensors zh.safetensors code.safetensors -c coverage --r 24 -o cov.json
      lens mask --criterion aimer --model openai/gpt-oss-20b --r 24 --out aimer.json
      lens mask c4.safetensors --r 128 --groups 8 --out deepseek-v3-c4.json
      lens mask --criterion naee --model ./my-moe --data c4.jsonl -n 64 --r 24 --out naee.json
    """
    check_output(out, [*bundles, model])
    suffix = ".txt" if out_format == "plain" else ".json"
    if out.suffix != suffix:  # a mask written over a bundle or weights file destroys it
        raise LensError(f"{out}: a --format {out_format} mask file must end in {suffix}")
    if out_format == "vllm" and model is None:
        raise LensError("--format vllm needs --model: vLLM numbers decoder layers, not MoE layers")
    loaded = [load_bundle(p) for p in find_bundles(list(bundles))]
    naee = None
    if criterion == "naee" and not loaded:
        naee = _naee_scores(model, r, budget, options)
    mask = make_mask(
        criterion,
        loaded,
        r=r,
        budget=budget,
        aimer=_aimer_scores(model, criterion == "aimer" and not loaded),
        min_per_layer=min_per_layer,
        groups=groups,
        naee=naee,
    )
    try:
        _write(out, mask, out_format, model)
    except OSError as exc:
        raise output_error(out, exc) from None
    kept = retained_mass_by_source(mask, loaded)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "mask": str(out),
                    "model": mask.model,
                    "criterion": mask.criterion,
                    "budget": mask.budget,
                    "num_experts": mask.num_experts,
                    "kept_per_layer": mask.kept_per_layer,
                    "total_kept": mask.total_kept,
                    "retained_mass": kept,
                    **_hash_routed(mask),
                },
                allow_nan=False,
            )
        )
        return
    console = Console(highlight=False)
    counts = sorted(set(mask.kept_per_layer))
    per_layer = str(counts[0]) if len(counts) == 1 else f"{counts[0]}..{counts[-1]}"
    console.print(
        f"wrote [bold]{shown(out)}[/]: criterion={shown(criterion)}, {per_layer} of "
        f"{mask.num_experts} experts "
        f"per layer, {mask.total_kept} in {mask.num_layers} layers"
    )
    for path, value in kept.items():
        share = "—" if value is None else f"{value:.1%}"
        console.print(f"  keeps {share} of the routing mass of {shown(path)} (mean over layers)")
    hashed = _hash_routed(mask).get("hash_routed_layers")
    if hashed:
        which = (
            f"layers {', '.join(map(str, hashed))} are"
            if len(hashed) > 1
            else f"layer {hashed[0]} is"
        )
        console.print(f"  MoE {which} hash-routed (a token-id table picks the experts): kept whole")


def _hash_routed(mask: Mask) -> dict:
    """``{"hash_routed_layers": [...]}`` when the mask kept such layers whole, else nothing."""
    hashed = mask.extra.get("hash_routed_layers")
    return {"hash_routed_layers": hashed} if hashed else {}


def _write(out: Path, mask: Mask, out_format: str, model: str | None) -> None:
    """The mask in the chosen format, written atomically."""
    if out_format == "json":
        write_mask(out, mask)
    elif out_format == "plain":
        atomic_write_text(out, plain_lists(mask))
    else:
        assert model is not None  # checked before any work
        layers = [layer.index for layer in Checkpoint.open(model).layers]
        doc = vllm_approximate_experts(mask, layers)
        atomic_write_text(out, json.dumps(doc, indent=2) + "\n")


@click.command("masks-compare")
@click.argument("paths", type=BUNDLE, nargs=-1, required=True)
@click.option(
    "--criteria",
    default=None,
    help="Comma-separated criteria: build one mask per bundle and criterion "
    "('coverage': one over all bundles; 'aimer': one from --model). Needs --r or --budget.",
)
@r_option
@budget_option
@model_option
@json_option
def masks_compare_command(
    paths: tuple[Path, ...],
    criteria: str | None,
    r: int | None,
    budget: int | None,
    model: str | None,
    as_json: bool,
) -> None:
    """Do masks agree, and how much of each dataset's routing mass do they keep?

    PATHS are mask files (*.json) and calibration bundles (files or folders).
    Shows the Jaccard overlap of every pair of masks and, for every bundle,
    the share of its routing mass each mask keeps (mean over layers, and the
    worst layer): a mask that keeps 99 % of C4 but 80 % of your code data will
    hurt code. With --criteria, masks are also built from the bundles.

    \b
    Examples:
      lens masks-compare c4-mass.json c4-reap.json aimer.json c4.safetensors code.safetensors
      lens masks-compare c4.safetensors zh.safetensors --criteria mass,reap,coverage --r 24
      lens masks-compare *.json sample_stats/ --json | jq .retained_mass.mean
    """
    mask_files = [p for p in paths if p.suffix == ".json"]
    bundles = [load_bundle(p) for p in find_bundles([p for p in paths if p.suffix != ".json"])]
    masks = [read_mask(p) for p in mask_files]
    if criteria:
        names = [c.strip() for c in criteria.split(",") if c.strip()]
        unknown = [c for c in names if c not in CRITERIA]
        if unknown:
            raise LensError(f"unknown criterion {unknown[0]!r} (choose from {', '.join(CRITERIA)})")
        aimer = _aimer_scores(model, "aimer" in names)
        masks += masks_for_criteria(names, bundles, r=r, budget=budget, aimer=aimer)
    elif r is not None or budget is not None:
        raise LensError("--r and --budget only apply with --criteria")
    result = compare_masks(masks, bundles)
    if as_json:
        click.echo(json.dumps(result.to_json(), allow_nan=False))
    else:
        print_masks_comparison(result)


def _pct(value: float) -> str:
    return "—" if value != value else f"{value:.1%}"


def print_masks_comparison(result: MasksComparison) -> None:
    console = Console(highlight=False)
    names = result.names
    for name, mask in zip(names, result.masks):
        counts = sorted(set(mask.kept_per_layer))
        per_layer = str(counts[0]) if len(counts) == 1 else f"{counts[0]}..{counts[-1]}"
        console.print(
            f"[bold]{shown(name)}[/]: {shown(mask.criterion)}, {per_layer}/{mask.num_experts} "
            "experts per layer"
        )
    table = Table(title="mean Jaccard over layers (min layer in brackets)")
    table.add_column("")
    for name in names:
        table.add_column(shown(name), justify="right")
    minimum = result.jaccard.min(axis=0)
    for i, name in enumerate(names):
        table.add_row(
            shown(name),
            *(f"{result.jaccard_mean[i, j]:.3f} ({minimum[i, j]:.2f})" for j in range(len(names))),
        )
    console.print(table)
    if not result.datasets:
        return
    titles = (
        "routing mass kept: mask (row) on dataset (column), mean (worst layer)",
        "relative to the best mask of the same size on the dataset, mean (worst layer)",
    )
    for title, values, mean in zip(
        titles,
        (result.retained, result.retained_rel),
        (result.retained_mean, result.retained_rel_mean),
    ):
        table = Table(title=title)
        table.add_column("")
        for name in result.dataset_names:
            table.add_column(shown(name), justify="right")
        worst = values.min(axis=0)
        for i, name in enumerate(names):
            table.add_row(
                shown(name),
                *(f"{_pct(mean[i, d])} ({_pct(worst[i, d])})" for d in range(len(result.datasets))),
            )
        console.print(table)


COMMANDS = [mask_command, masks_compare_command]
