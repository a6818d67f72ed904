"""``lens browse`` opens the app on bundles; ``lens serve`` offers it in a web browser.

Textual (and textual-serve) import inside the commands, so ``lens --help`` and
the analysis commands never load them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from lens_tui.commands.default import default_paths


@click.command("browse")
@click.argument("paths", type=click.Path(path_type=Path), nargs=-1, required=True)
def browse_command(paths: tuple[Path, ...]) -> None:
    """Open the app on bundle files or folders of bundles (and lens evaluate results).

    \b
    Keys: a/b pick datasets A and B, +/- the budget r, t/T the threshold τ,
    [ ] the layer, 1-5 the views (compare, ablation, matrix, collect, predict),
    ? help, ctrl+p the command palette, q quit. A bundle that fails to load
    is reported in the app; the others still open.

    \b
    Examples:
      lens browse sample_stats/
      lens browse c4.safetensors zh.safetensors code.safetensors
    """
    from lens_tui.app import build_app

    build_app(list(paths)).run()


def serve_command_line(paths: tuple[Path, ...]) -> str:
    """The shell command textual-serve runs for each browser session."""
    args = [sys.executable, "-m", "lens_tui"]
    if paths:
        args += ["browse", *(str(Path(p).resolve()) for p in paths)]
    return shlex.join(args)


@click.command("serve")
@click.argument("paths", type=click.Path(path_type=Path), nargs=-1)
@click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="Interface to bind. The default keeps the app private to this machine; "
    "use 0.0.0.0 only on a network you trust.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
def serve_command(paths: tuple[Path, ...], host: str, port: int) -> None:
    """Offer the app in a web browser (textual-serve); each visitor gets their own session.

    PATHS are bundles or folders as for `lens browse` (default: sample_stats/).
    Over SSH, forward the port: ssh -L 8000:localhost:8000 gpu-server.

    \b
    Examples:
      lens serve sample_stats/
      lens serve runs/ --port 8080
    """
    from textual_serve.server import Server

    if not paths:
        folders, _notice = default_paths()
        paths = tuple(folders)
    Server(serve_command_line(paths), host=host, port=port, title="Expert Calibration Lens").serve()


COMMANDS = [browse_command, serve_command]
