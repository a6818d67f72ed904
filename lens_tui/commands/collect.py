"""``lens collect`` and ``lens index``: build bundles from a model, or from kept raw shards.

Both are thin shells over ``core.collect``; torch and transformers are imported
only when the command runs, so ``lens --help`` stays fast.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.collect.config import CollectConfig, CollectProgress
from core.collect.distributed import ranks_from_env
from core.collect.raw import index_raw
from core.collect.runner import run_collection
from core.errors import LensError
from core.formats.bundle import load_bundle
from core.io.outputs import check_output, output_error
from core.model.loading import ModelCache
from lens_tui.commands.arguments import BATCH_SIZE, MAX_LENGTH, FiniteFloatRange, count
from lens_tui.commands.options import model_and_text_options, model_options
from lens_tui.safe_text import printable, shown

#: How often a non-terminal stderr (a log file, nohup, CI) gets a progress line.
LOG_EVERY_S = 10.0


class ProgressDisplay:
    """A rich progress bar on stderr, or periodic log lines when stderr is not a terminal."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.progress: Progress | None = None
        self.task = None
        self.last_log = 0.0
        self.stage = ""
        self.message = ""

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("loading", total=None, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, update: CollectProgress) -> None:
        rate = (
            f"{update.samples_per_s:,.1f} samples/s  {update.tokens_per_s:,.0f} tokens/s"
            if update.samples_per_s
            else ""
        )
        note = update.message if update.message != self.message else ""
        self.message = update.message
        if self.progress is not None:
            self.progress.update(
                self.task,
                description=update.stage,
                completed=update.samples_done,
                total=update.samples_total or None,
                rate=rate,
            )
            if note:
                self.progress.console.print(f"[dim]{shown(note)}[/]")
            return
        now = time.monotonic()
        if note or update.stage != self.stage or now - self.last_log >= LOG_EVERY_S:
            self.last_log = now
            self.stage = update.stage
            parts = [update.stage]
            if update.samples_total:
                parts.append(f"{update.samples_done}/{update.samples_total} samples")
            parts += [p for p in (rate, update.message) if p]
            self.console.print(shown("  ".join(parts)))


@click.command("collect")
@click.option("--model", "-m", required=True, help="Local model folder or hub id.")
@click.option(
    "--data",
    "-d",
    "datas",
    required=True,
    multiple=True,
    help="A .txt (one sample per non-empty line), .jsonl/.json (--text-field), .parquet file, or a `datasets` name. Repeat it to collect several sets with one model load (--out is then a folder).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="The bundle to write (*.safetensors).",
)
@click.option(
    "--num-samples",
    "-n",
    type=count(),
    default=None,
    help="Use the first N usable samples (default: all).",
)
@click.option(
    "--max-length",
    type=MAX_LENGTH,
    default=512,
    show_default=True,
    help="Truncate each sample to this many tokens.",
)
@click.option(
    "--batch-size",
    "-b",
    type=BATCH_SIZE,
    default=8,
    show_default=True,
    help="Samples per forward pass.",
)
@click.option(
    "--dataset-name",
    default=None,
    help="Dataset label stored in the bundle (default: the file's stem).",
)
@click.option(
    "--no-energy",
    is_flag=True,
    help="Router statistics only: skip expert-output norms (energy, EAN, REAP).",
)
@click.option(
    "--keep-raw",
    type=click.Path(path_type=Path),
    default=None,
    help="Also keep the paper's per-token shards (layerXXX_shardYYY) in this folder (large).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Collect only every N-th sample from the I-th (0-based), e.g. one task of a SLURM array; combine the parts with `lens merge`.",
)
@click.option(
    "--stream-layers",
    is_flag=True,
    help="Load one decoder layer at a time from the checkpoint's safetensors (models larger "
    "than memory); hidden states between layers wait on disk in OUT.partial/.",
)
@model_and_text_options
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@click.option(
    "--checkpoint-every",
    "checkpoint_seconds",
    type=FiniteFloatRange(min=0.0),
    default=30.0,
    show_default=True,
    help="Save finished samples for resume at most this many seconds apart.",
)
def collect_command(**options: object) -> None:
    """Collect router statistics of a MoE model on a calibration dataset into a bundle.

    Runs the model once over the data with read-only hooks on every MoE layer
    and writes, per sample, the sums of the dense router softmax, the top-k
    counts and weights the model used, and (unless --no-energy) the norms of
    the selected experts' outputs. The model's outputs are not changed.

    Several candidate sets? Repeat --data and give a folder as --out: the
    model is loaded once and each set gets OUT/<file stem>.safetensors.

    Interrupted? Re-run the same command: finished samples are kept in
    OUT.partial/ and only the rest is collected (a smaller --batch-size is
    fine after running out of memory).

    Several GPUs or nodes: launch the same command with `torchrun
    --nproc-per-node N` (or `accelerate launch`); ranks split the batches and
    rank 0 writes the one bundle (OUT must be on a shared filesystem). A model
    too big for one GPU: --device-map auto.

    \b
    Examples:
      lens collect -m openai/gpt-oss-20b -d c4.jsonl -o c4.safetensors -n 512 --max-length 2048
      lens collect -m ./my-moe -d allenai/c4 --dataset-config en --split validation -n 256 -o c4.safetensors
      lens collect -m ./my-moe -d zh.txt -o zh.safetensors --no-energy --batch-size 4
      lens collect -m ./my-moe -d c4.jsonl -d zh.txt -d code.jsonl -o bundles/
      torchrun --nproc-per-node 8 -m lens_tui collect -m openai/gpt-oss-120b -d c4.jsonl -o c4.safetensors
    """

    datas = list(options["datas"])
    targets = _targets(datas, options["out"], options["dataset_name"])
    inputs = [*datas, options["model"]]
    if len(targets) > 1:
        check_output(options["out"], inputs, kind="folder")
    for _data, target, _name in targets:
        check_output(target, [*inputs, options["keep_raw"]])
    if options["keep_raw"] is not None:
        check_output(options["keep_raw"], inputs, kind="folder", option="--keep-raw")
    main = ranks_from_env().is_main  # under torchrun only rank 0 talks
    models = ModelCache()  # several data sets: the model is loaded once
    failed = 0
    for data, out, dataset_name in targets:
        config = CollectConfig(
            options=model_options(
                options,
                data=data,
                num_samples=options["num_samples"],
                max_length=options["max_length"],
                batch_size=options["batch_size"],
                dataset_name=dataset_name,
            ),
            out=out,
            energy=not options["no_energy"],
            keep_raw=options["keep_raw"],
            overwrite=options["overwrite"],
            checkpoint_seconds=options["checkpoint_seconds"],
            shard=options["shard"],
            stream_layers=options["stream_layers"],
            command="lens " + shlex.join(sys.argv[1:]),
        )
        started = time.monotonic()
        try:
            if main:
                with ProgressDisplay() as display:
                    path = run_collection(config, progress=display, models=models)
            else:
                path = run_collection(config, models=models)
        except KeyboardInterrupt:
            click.echo(
                f"interrupted: finished samples are saved in {config.out}.partial/; "
                "re-run the same command to resume",
                err=True,
            )
            sys.exit(130)
        except OSError as exc:  # the disk, not the user's input: still one line
            error: LensError = output_error(out, exc)
            if len(targets) == 1:
                raise error from None
            failed += 1
            click.echo(f"error: {printable(error)}", err=True)
            continue
        except LensError as exc:
            if len(targets) == 1:
                raise
            failed += 1
            click.echo(f"error: {printable(exc)}", err=True)  # the other data sets still run
            continue
        if main:
            click.echo(_summary(path, time.monotonic() - started), err=True)
    if failed:
        raise SystemExit(1)


def _targets(
    datas: list[str], out: Path, dataset_name: str | None
) -> list[tuple[str, Path, str | None]]:
    """(data, bundle path, dataset label) per --data; several data sets write into a folder."""

    if len(datas) == 1:
        return [(datas[0], out, dataset_name)]
    if dataset_name is not None:
        raise LensError(
            "--dataset-name names one data set; with several --data, files are named by their stems"
        )
    if out.suffix == ".safetensors":
        raise LensError(f"{out}: with several --data, --out is a folder (one bundle per data set)")
    targets = []
    for data in datas:
        stem = Path(data).stem if Path(data).suffix else data.replace("/", "_")
        targets.append((data, out / f"{stem}.safetensors", None))
    names = [t[1].name for t in targets]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise LensError(f"two data sets would both write {out / duplicate}; rename one")
    return targets


def _summary(path: Path, seconds: float) -> str:
    """One line about the finished bundle."""

    bundle = load_bundle(path)
    size = path.stat().st_size / 2**20
    minutes, secs = divmod(int(round(seconds)), 60)
    return (
        f"wrote {path}: {bundle.num_samples:,} samples, {bundle.num_tokens:,} tokens, "
        f"{bundle.num_layers} layers × {bundle.num_experts} experts, {size:.1f} MiB, "
        f"in {minutes}:{secs:02d}"
    )


@click.command("index")
@click.argument("raw_dir", type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), required=True, help="The bundle to write."
)
@click.option("--model", default=None, help="Model name for the bundle (default: from the shards).")
@click.option(
    "--dataset", default=None, help="Dataset label (default: from the shards, or the folder name)."
)
@click.option(
    "--top-k", type=count(), default=None, help="Top-k of the model (default: from the shards)."
)
def index_command(
    raw_dir: Path, out: Path, model: str | None, dataset: str | None, top_k: int | None
) -> None:
    """Compile kept raw shards (layerXXX_shardYYY) back into a bundle.

    Reads the per-token shards written by `lens collect --keep-raw` (safetensors)
    or the paper's `.pt` shards (loaded with weights_only=True only; anything
    that needs unpickling is refused) and sums each sample's routing
    probabilities over its tokens.

    \b
    Examples:
      lens index raw/ --out c4.safetensors
      lens index paper_shards/ --out c4.safetensors --model gpt-oss-20b --top-k 4
    """

    check_output(out, [raw_dir])
    try:
        path = index_raw(raw_dir, out, model=model, dataset=dataset, top_k=top_k)
    except OSError as exc:
        raise output_error(out, exc) from None
    click.echo(f"wrote {path}", err=True)


COMMANDS = [collect_command, index_command]
