"""``lens`` loads a command's module only when that command runs (``lens browse`` starts sooner)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import lens_tui.commands
from lens_tui.cli import COMMAND_MODULES

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_is_listed_under_its_own_module():
    found = {}
    for info in pkgutil.iter_modules(lens_tui.commands.__path__):
        module = importlib.import_module(f"lens_tui.commands.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            found[command.name] = info.name
    assert found == COMMAND_MODULES


def test_opening_the_app_loads_no_other_command_module():
    """``lens browse`` as the console script resolves it; then what it has imported."""
    code = (
        "import json, sys\n"
        "from lens_tui.cli import cli\n"
        "cli.get_command(None, 'browse')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "lens_tui.commands.browse" in loaded
    for other in set(COMMAND_MODULES.values()) - {"browse"}:
        assert f"lens_tui.commands.{other}" not in loaded
    assert not {"core.collect", "core.families", "core.prune", "torch"} & loaded
