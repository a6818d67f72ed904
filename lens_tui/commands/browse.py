"""``lens browse`` opens the app on bundles; ``lens serve`` offers it in a web browser.

Textual (and textual-serve) import inside the commands, so ``lens --help`` and
the analysis commands never load them.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from core.errors import LensError
from lens_tui.commands.default import default_paths


@click.command("browse")
@click.argument("paths", type=click.Path(path_type=Path), nargs=-1, required=True)
@click.option(
    "--read-only",
    is_flag=True,
    hidden=True,
    help="No Collect view: the app writes nothing (what lens serve runs by default).",
)
def browse_command(paths: tuple[Path, ...], read_only: bool) -> None:
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
    from lens_tui.app import build_app  # textual loads only when the app opens

    build_app(list(paths), read_only=read_only).run()


def serve_command_line(paths: tuple[Path, ...], *, allow_collect: bool = False) -> str:
    """The shell command textual-serve runs for each browser session.

    ``exec`` makes the session's process the app itself, so ending it ends the
    app (no shell in between to outlive it).
    """
    args = [sys.executable, "-m", "lens_tui", "browse"]
    if not allow_collect:
        args.append("--read-only")
    args += [str(Path(p).resolve()) for p in paths]
    return "exec " + shlex.join(args)


REMOTE_WARNING = (
    "warning: serving on {host}, which other machines can reach: lens serve has no "
    "authentication, so anyone who can reach {host}:{port} can use the app{collect}"
)


@click.command("serve")
@click.argument("paths", type=click.Path(path_type=Path), nargs=-1)
@click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="Interface to bind. Only loopback addresses unless --allow-remote is given.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other machines can reach (there is no authentication).",
)
@click.option(
    "--allow-collect",
    is_flag=True,
    help="Offer the Collect view, which loads models and writes bundles on this server.",
)
def serve_command(
    paths: tuple[Path, ...], host: str, port: int, allow_remote: bool, allow_collect: bool
) -> None:
    """Offer the app in a web browser (textual-serve); each visitor gets their own session.

    PATHS are bundles or folders as for `lens browse` (default: sample_stats/).
    Served, the app is read-only (no Collect view) unless --allow-collect, and
    it listens on localhost only unless --allow-remote. Each session's process
    ends when its browser leaves or the server stops.
    Over SSH, forward the port: ssh -L 8000:localhost:8000 gpu-server.

    \b
    Examples:
      lens serve sample_stats/
      lens serve runs/ --port 8080
    """
    # textual-serve and aiohttp load only when serving, so every other command starts fast.
    from lens_tui.serve import LensServer, is_loopback

    if not 1 <= port <= 65535:
        raise LensError(f"--port must be between 1 and 65535 (got {port})")
    if not is_loopback(host):
        if not allow_remote:
            raise LensError(
                f"--host {host} is reachable from other machines and lens serve has no "
                "authentication; add --allow-remote to serve it anyway, or forward the port over SSH"
            )
        collect = " and write files on this server" if allow_collect else ""
        click.echo(REMOTE_WARNING.format(host=host, port=port, collect=collect), err=True)
    if not paths:
        folders, _notice = default_paths()
        paths = tuple(folders)
    server = LensServer(
        serve_command_line(paths, allow_collect=allow_collect),
        host=host,
        port=port,
        title="Expert Calibration Lens",
    )
    try:
        server.serve()
    except OSError as exc:
        raise LensError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


COMMANDS = [browse_command, serve_command]
