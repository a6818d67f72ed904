"""``lens prune``: write a checkpoint that keeps only a mask's experts."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from core.families import ADAPTERS
from core.io.outputs import check_output, output_error
from core.prune.surgery import PruneProgress, prune_checkpoint
from lens_tui.safe_text import shown


@click.command("prune")
@click.option("--model", required=True, help="The checkpoint to prune: a folder or a hub id.")
@click.option(
    "--mask",
    "mask_path",
    type=click.Path(path_type=Path),
    required=True,
    help="A mask from `lens mask` (docs/formats.md §Masks).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="A new (or empty) folder for the pruned checkpoint.",
)
@click.option(
    "--allow-other-model",
    is_flag=True,
    help="Accept a mask whose 'model' names another model (layer and expert counts must still match).",
)
@click.option(
    "--clamp-top-k",
    is_flag=True,
    help="Accept layers keeping fewer than top-k experts and lower top-k to the smallest count.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout."
)
def prune_command(
    model: str,
    mask_path: Path,
    out: Path,
    allow_other_model: bool,
    clamp_top_k: bool,
    as_json: bool,
) -> None:
    """Write a pruned checkpoint that keeps only the mask's experts.

    Router rows (and bias, and DeepSeek's score-correction bias) and every
    per-expert tensor are sliced, the config's expert count is updated, and
    the tokenizer and generation config are copied; the result loads with
    AutoModelForCausalLM.from_pretrained and computes what the original does
    with the dropped experts made unselectable. Shards are streamed one tensor
    at a time, so memory stays small whatever the model's size.

    Supported families: FAMILIES. A mask keeping different numbers of
    experts per layer is padded with unreachable experts for GPT-OSS (its
    router has a bias) and refused for the others.

    \b
    Examples:
      lens prune --model openai/gpt-oss-20b --mask c4-mass.json --out gpt-oss-20b-24e
      lens prune --model ./Qwen3-30B-A3B --mask reap.json --out ./qwen3-pruned --json
    """
    check_output(out, [model, mask_path], kind="folder")
    console = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("reading", total=None)

        def progress(update: PruneProgress) -> None:
            bar.update(
                task,
                description=f"shard {update.shard}/{update.shards}",
                completed=update.bytes_done,
                total=update.bytes_total,
            )

        try:
            result = prune_checkpoint(
                model,
                mask_path,
                out,
                allow_other_model=allow_other_model,
                clamp_top_k=clamp_top_k,
                progress=progress,
            )
        except OSError as exc:
            raise output_error(out, exc) from None
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    counts = sorted(set(result.kept_per_layer))
    kept = str(counts[0]) if len(counts) == 1 else f"{counts[0]}..{counts[-1]}"
    console.print(
        f"wrote [bold]{shown(result.out)}[/]: {result.num_experts_before} → {kept} experts per layer, "
        f"{result.bytes_in / 1e9:.2f} GB → {result.bytes_out / 1e9:.2f} GB of weights"
    )
    for note in result.notes:
        console.print(f"  note: {shown(note)}")


prune_command.help = (prune_command.help or "").replace(
    "FAMILIES", ", ".join(a.label for a in ADAPTERS if a.prune is not None)
)

COMMANDS = [prune_command]
