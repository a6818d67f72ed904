"""The layering rules are enforced, not remembered: ``lint-imports`` passes, and it bites.

Each case copies ``core/`` and ``lens_tui/`` into a temporary folder, adds one
forbidden import to one module and runs ``lint-imports`` with the project's own
contracts (``[tool.importlinter]`` in ``pyproject.toml``): the check must fail and
name the broken contract. The untouched copy must pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _copy_tree(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("core", "lens_tui"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _add_import(path: Path, line: str) -> None:
    text = path.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in text, path
    path.write_text(text.replace(marker, marker + line + "\n", 1))


def test_the_project_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/metrics.py", "from lens_tui.widgets.colors import A_HEX", "sits above core"),
        ("core/formats/mask.py", "import lens_tui.cli", "sits above core"),
        ("core/engine.py", "import torch", "neither torch nor transformers"),
        ("core/masks/criteria.py", "import transformers", "neither torch nor transformers"),
        ("core/predict.py", "import core.evaluate.runner", "neither torch nor transformers"),
        ("core/ablation.py", "import rich", "no terminal or web UI library"),
        ("core/collect/runner.py", "import click", "no terminal or web UI library"),
        ("lens_tui/widgets/expert_chart.py", "import textual.widget", "numpy and rich only"),
    ],
)
def test_a_forbidden_import_breaks_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    folder = _copy_tree(tmp_path)
    _add_import(folder / module, line)
    result = _lint(folder)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout
