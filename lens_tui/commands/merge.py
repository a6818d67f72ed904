"""``lens merge``: concatenate bundles of one model collected in parts."""

from __future__ import annotations

from pathlib import Path

import click

from core.formats.bundle import find_bundles
from core.io.outputs import check_output, output_error
from core.merge import merge_bundles


@click.command("merge")
@click.argument("paths", type=click.Path(path_type=Path), nargs=-1, required=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="The merged bundle to write.",
)
@click.option(
    "--allow-duplicates",
    is_flag=True,
    help="Keep samples whose example id appears in more than one part of the same dataset.",
)
@click.option(
    "--dataset",
    default=None,
    help="Dataset label of the result (default: the parts' labels joined by '+').",
)
def merge_command(
    paths: tuple[Path, ...], out: Path, allow_duplicates: bool, dataset: str | None
) -> None:
    """Concatenate bundles of the same model into one.

    PATHS are bundle files or folders of bundles. Parts must come from the same
    model (same layers, experts and top-k). Within one dataset, samples are
    sorted by example id and an id found in two parts is refused (it would be
    counted twice) unless --allow-duplicates. Parts of different datasets make
    a mixed calibration set. Statistics missing from some part are left out
    (with a warning).

    \b
    Examples:
      lens merge part-*.safetensors --out c4.safetensors
      lens merge news.safetensors wiki.safetensors --out mixed.safetensors --dataset mixed
    """
    check_output(out, paths)
    try:
        result = merge_bundles(
            find_bundles(list(paths)), out, allow_duplicates=allow_duplicates, dataset=dataset
        )
    except OSError as exc:
        raise output_error(out, exc) from None
    if result.dropped_statistics:
        click.echo(
            f"warning: left out {', '.join(result.dropped_statistics)} (not in every part)",
            err=True,
        )
    click.echo(f"wrote {result.path} ({result.samples:,} samples)", err=True)


COMMANDS = [merge_command]
