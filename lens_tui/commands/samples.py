"""``lens samples`` and ``lens design``: from diagnosis to prescription.

``samples`` inspects one bundle's calibration sequences one by one
(:mod:`core.samples`), showing their text from the user's own data file when
given (:mod:`core.textdata`); ``design`` chooses the calibration mix and a
concrete sequence list for a set of target domains (:mod:`core.design`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from core.design import Design, design, write_calibration
from core.engine import Profile
from core.errors import LensError
from core.formats.mask import write_mask
from core.samples import DEFAULT_DUPLICATE_JS, SORT_COLUMNS, SampleReport, analyse
from core.textdata import TextSource, export_without, first_line
from lens_tui.safe_text import shown

PATH = click.Path(path_type=Path)  # existence is checked by the loaders, with a clean message


def _emit_json(document: dict) -> None:
    click.echo(json.dumps(document, allow_nan=False))


class ListOptionsCommand(click.Command):
    """A command whose list options take several values after one flag.

    ``--candidates A B C --targets T`` is read as ``--candidates A --candidates B
    --candidates C --targets T``; repeating the flag works too.
    """

    list_options: tuple[str, ...] = ("--candidates", "--targets", "--data")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        current: str | None = None
        for arg in args:
            if arg.startswith("-"):
                current = arg if arg in self.list_options else None
                rewritten.append(arg)
            elif current is not None and rewritten[-1] != current:
                rewritten.extend([current, arg])
            else:
                rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


# --------------------------------------------------------------------------- lens samples


@click.command("samples")
@click.argument("bundle", type=PATH)
@click.option("--r", "r", type=int, required=True, help="Experts kept per layer (1..E).")
@click.option(
    "--data",
    type=PATH,
    default=None,
    help="The data file the bundle was collected from (.txt/.jsonl/.json/.parquet): "
    "shows each sample's text; read lazily, never modified.",
)
@click.option("--text-field", default="text", show_default=True, help="Text field of JSON data.")
@click.option(
    "--sort",
    "sort",
    type=click.Choice(SORT_COLUMNS),
    default="js_mean",
    show_default=True,
    help="Table order (largest first, except index and example_id).",
)
@click.option(
    "--limit", type=int, default=20, show_default=True, help="Table rows (0: all samples)."
)
@click.option(
    "--dup-js",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_DUPLICATE_JS,
    show_default=True,
    help="Near duplicates: samples within this JS (bits, mean over layers) of each other.",
)
@click.option(
    "--export-kept",
    type=PATH,
    default=None,
    help="Write --data minus the flagged samples to this file (same format as --data).",
)
@click.option(
    "--drop-outliers",
    type=click.IntRange(min=0),
    default=None,
    help="With --export-kept: flag the K samples with the largest mean JS.",
)
@click.option(
    "--max-js",
    type=click.FloatRange(min=0.0),
    default=None,
    help="With --export-kept: flag every sample whose mean JS is above X bits.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def samples_command(
    bundle: Path,
    r: int,
    data: Path | None,
    text_field: str,
    sort: str,
    limit: int,
    dup_js: float,
    export_kept: Path | None,
    drop_outliers: int | None,
    max_js: float | None,
    as_json: bool,
) -> None:
    """Inspect a bundle's calibration samples one by one.

    \b
    Per sample: its token count; the JS divergence (bits) of its own routing
    signature from the dataset's (mean and worst layer); its influence: how
    many experts (summed over layers) the top-r mask changes when the sample
    is left out (exact leave-one-out); and its near-duplicate group.
    JSON lists every sample in bundle order; --sort and --limit shape the table.

    \b
    Examples:
      lens samples sample_stats/wiki_en.safetensors --r 8
      lens samples wiki.safetensors --r 8 --data wiki.jsonl --sort influence --limit 10
      lens samples wiki.safetensors --r 8 --json | jq '.samples[] | select(.mask_changes > 0)'
      lens samples wiki.safetensors --r 8 --data wiki.jsonl \\
          --export-kept wiki.clean.jsonl --drop-outliers 5
    """
    if (drop_outliers is not None or max_js is not None) and export_kept is None:
        raise LensError("--drop-outliers and --max-js choose what --export-kept leaves out")
    if export_kept is not None:
        if data is None:
            raise LensError("--export-kept writes your data minus flagged samples; give --data")
        if (drop_outliers is None) == (max_js is None):
            raise LensError("--export-kept needs exactly one of --drop-outliers K and --max-js X")
    report = analyse(Profile.load(bundle).bundle, r, dup_js)
    source = TextSource(data, text_field) if data is not None else None
    if export_kept is not None:
        assert source is not None
        flagged = _flagged(report, drop_outliers, max_js)
        ids = [int(report.bundle.example_ids[i]) for i in flagged]
        kept, dropped = export_without(source.path, export_kept, ids, text_field, [bundle])
        click.echo(
            f"wrote {export_kept}: {kept:,} records kept, {dropped:,} flagged samples left out",
            err=True,
        )
    if as_json:
        _emit_json(report.to_json())
    else:
        _print_samples(report, source, sort, limit)


def _flagged(report: SampleReport, drop_outliers: int | None, max_js: float | None) -> list[int]:
    """Sample indices to leave out: the K largest mean JS, or every mean JS above X."""
    js = report.js_mean
    if drop_outliers is not None:
        return report.order("js_mean")[:drop_outliers].tolist()
    return [i for i in range(len(js)) if np.isfinite(js[i]) and js[i] > max_js]


def _print_samples(report: SampleReport, source: TextSource | None, sort: str, limit: int) -> None:
    console = Console(highlight=False)
    b = report.bundle
    order = report.order(sort)
    picked = order if limit <= 0 else order[:limit]
    ids = np.asarray(b.example_ids)
    texts = source.texts(ids[picked].tolist()) if source is not None else {}
    # The texts are read first: a broken data file is one error line, not half a report.
    console.print(
        f"[bold]{shown(b.path)}[/]  dataset={shown(b.dataset)}  samples={b.num_samples:,}  "
        f"tokens={b.num_tokens:,}  L={b.num_layers}  E={b.num_experts}  r={report.r}"
    )
    js_mean, js_max = report.js_mean, report.js_max
    table = Table(title=f"samples by {sort} ({len(picked)} of {b.num_samples})")
    for name in ("index", "example id", "tokens", "JS mean", "JS max", "mask Δ", "dup"):
        table.add_column(name, justify="right")
    if source is not None:
        table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=60)
    for i in picked.tolist():
        row = [
            str(i),
            str(int(ids[i])),
            f"{int(report.tokens[i]):,}",
            _bits(js_mean[i]),
            _bits(js_max[i]),
            "—" if report.mask_changes[i] < 0 else str(int(report.mask_changes[i])),
            "" if report.groups[i] < 0 else str(int(report.groups[i])),
        ]
        if source is not None:
            text = texts.get(int(ids[i]))
            row.append("(not in file)" if text is None else shown(first_line(text)))
        table.add_row(*row)
    console.print(table)
    moving = int((report.mask_changes > 0).sum())
    groups = int(report.groups.max()) + 1 if (report.groups >= 0).any() else 0
    console.print(
        f"{moving:,} samples change the top-{report.r} mask when left out; "
        f"{groups:,} near-duplicate groups (JS ≤ {report.dup_js:g} bits)"
    )


def _bits(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.4f}"


# --------------------------------------------------------------------------- lens design


@click.command("design", cls=ListOptionsCommand)
@click.option(
    "--candidates",
    type=PATH,
    multiple=True,
    required=True,
    help="Bundles of the datasets you could calibrate with (several after one flag).",
)
@click.option(
    "--targets",
    type=PATH,
    multiple=True,
    required=True,
    help="Bundles of the domains the pruned model must serve (may be the candidates).",
)
@click.option("--r", "r", type=int, required=True, help="Experts kept per layer (1..E).")
@click.option(
    "--sequences",
    type=click.IntRange(min=1),
    default=None,
    help="Calibration sequences in the set (default: the pooled candidates' convergence count).",
)
@click.option(
    "--out",
    type=PATH,
    default=None,
    help="Write the selected sequences as a calibration JSONL (needs --data).",
)
@click.option(
    "--data",
    type=PATH,
    multiple=True,
    help="The candidates' data files, in the order of --candidates (for --out).",
)
@click.option("--text-field", default="text", show_default=True, help="Text field of JSON data.")
@click.option("--mask-out", type=PATH, default=None, help="Write the selection's top-r mask.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def design_command(
    candidates: tuple[Path, ...],
    targets: tuple[Path, ...],
    r: int,
    sequences: int | None,
    out: Path | None,
    data: tuple[Path, ...],
    text_field: str,
    mask_out: Path | None,
    as_json: bool,
) -> None:
    """Choose the calibration set that keeps the most routing mass of the worst-served target.

    \b
    The objective is the minimum over targets of the relative retained mass:
    the share of each target's best attainable top-r mass that the set's
    mask keeps (1 = as good as calibrating on that target itself). Reports
      design     mixture weights over the candidates for N sequences,
      selection  a concrete greedy list of sequences (example ids),
      baselines  every single candidate and the uniform mix,
    all under the same objective, so the gain is visible.

    \b
    Examples:
      lens design --candidates sample_stats/*.safetensors \\
                  --targets sample_stats/wiki_en.safetensors sample_stats/code_python.safetensors --r 8
      lens design --candidates c4.safetensors code.safetensors zh.safetensors \\
                  --targets c4.safetensors code.safetensors zh.safetensors --r 16 --sequences 256 \\
                  --data c4.jsonl code.jsonl zh.txt --out calib.jsonl --mask-out calib-mask.json
    """
    if out is not None and len(data) != len(candidates):
        raise LensError(
            f"--out takes the texts from --data: give one data file per candidate, in the same "
            f"order ({len(candidates)} candidates, {len(data)} data files)"
        )
    if data and out is None:
        raise LensError("--data is read for --out; give --out calib.jsonl as well")
    inputs = [*candidates, *targets, *data]
    for written in (out, mask_out):
        if written is not None and any(_same(written, p) for p in inputs):
            raise LensError(f"{written}: is an input of this command; choose another output file")
    result = design(
        [Profile.load(p) for p in candidates], [Profile.load(p) for p in targets], r, sequences
    )
    if out is not None:
        count = write_calibration(out, result, list(data), text_field)
        click.echo(f"wrote {out}: {count:,} sequences", err=True)
    if mask_out is not None:
        write_mask(mask_out, result.selection_mask())
        click.echo(f"wrote {mask_out}", err=True)
    if as_json:
        _emit_json(result.to_json())
    else:
        _print_design(result)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _print_design(result: Design) -> None:
    console = Console(highlight=False)
    doc = result.to_json()
    targets = list(doc["design"]["per_target"])
    console.print(
        f"objective: min over targets of relative retained mass at r={result.r}, "
        f"N={result.sequences} sequences"
    )
    table = Table(title="calibration sets, by the worst-served target")
    table.add_column("set")
    table.add_column("worst target", justify="right")
    for name in targets:
        table.add_column(shown(name), justify="right")

    def add(label: str, score: dict, style: str = "") -> None:
        values = (_pct(score["per_target"][t]) for t in targets)
        table.add_row(shown(label), _pct(score["value"]), *values, style=style)

    add("design (mix)", doc["design"], "bold")
    add("selection", doc["selection"], "bold")
    table.add_section()
    baselines = doc["baselines"]
    for name in sorted(baselines, key=lambda n: -(baselines[n]["value"] or 0.0)):
        add("uniform mix" if name == "uniform" else name, baselines[name])
    console.print(table)
    weights = doc["design"]["weights"]
    console.print(
        "design mix: "
        + ", ".join(
            f"{shown(name)} {w:.1%} ({round(w * result.sequences)})"
            for name, w in sorted(weights.items(), key=lambda kv: -kv[1])
            if w > 0
        )
    )
    chosen = doc["selection"]["example_ids"]
    console.print(
        f"selection ({sum(map(len, chosen.values()))} sequences): "
        + ", ".join(f"{shown(name)} {len(ids)}" for name, ids in chosen.items() if ids)
    )
    best_single = max(
        (v["value"] or 0.0 for k, v in baselines.items() if k != "uniform"), default=0.0
    )
    console.print(
        f"design {_pct(doc['design']['value'])} vs best single candidate {_pct(best_single)} "
        f"and uniform mix {_pct(baselines['uniform']['value'])}"
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


COMMANDS = [samples_command, design_command]
