"""The ``lens`` command line: a click group whose commands are thin shells over ``core``.

Every user error surfaces as :class:`core.errors.LensError`; the group turns it
into one line on stderr (``error: <file>: <problem>``) and a non-zero exit, so
no user ever sees a traceback for bad input.
"""

from __future__ import annotations

import importlib
import sys

import click

from core import __version__
from core.errors import LensError
from lens_tui.commands.default import run_default
from lens_tui.safe_text import printable

#: Exit status for user errors (bad file, bad argument). Click uses 2 for usage errors.
EXIT_USER_ERROR = 1

#: Each command's module in :mod:`lens_tui.commands` (it lists its commands in ``COMMANDS``).
#: A module, and what it imports (the collection runner, sixty family adapters,
#: pruning), loads only when one of its commands runs or help lists them all, so
#: ``lens browse`` starts without them.
COMMAND_MODULES = {
    "stats": "analysis",
    "compare": "analysis",
    "ablate": "analysis",
    "matrix": "analysis",
    "browse": "browse",
    "serve": "browse",
    "collect": "collect",
    "index": "collect",
    "merge": "merge",
    "mask": "masks",
    "masks-compare": "masks",
    "prune": "prune",
    "evaluate": "evaluate",
    "predict-vs-actual": "evaluate",
    "samples": "samples",
    "design": "samples",
}


class LensGroup(click.Group):
    """A click group that reports :class:`LensError` as one clean line; commands load on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        commands = importlib.import_module(f"lens_tui.commands.{module}").COMMANDS
        return next(command for command in commands if command.name == cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LensError as exc:
            click.echo(f"error: {printable(exc)}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except click.UsageError as exc:
            # Click prints usage, a hint and the error on three lines; keep the
            # one-line contract and point at --help instead.
            where = exc.ctx.command_path if exc.ctx is not None else "lens"
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {printable(message)} (see {where} --help)", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(
    cls=LensGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", "-V", prog_name="lens")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Expert Calibration Lens: compare MoE calibration datasets by router statistics.

    \b
    Collect once on a GPU server, browse anywhere:
      lens collect --model openai/gpt-oss-20b --data c4.jsonl --out c4.safetensors
      lens compare c4.safetensors zh.safetensors --r 24
      lens                      # open the app on sample_stats/

    Every analysis command takes --json and prints exactly one JSON document.
    """
    if ctx.invoked_subcommand is None:
        run_default()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lens")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
