"""Every third-party package the code imports is declared in ``pyproject.toml``.

An undeclared import works on the machine where it happens to be installed and
fails for the user who installs the package as declared (``huggingface_hub`` in
pruning once did). The imports are read with ``ast`` (module-level and lazy
ones alike) and mapped to their distributions through the installed metadata.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"core", "lens_tui", "scripts", "tests", "benchmarks"}
#: Imported on purpose without being declared, and why.
UNDECLARED: dict[str, str] = {}
#: Which dependency groups each folder may rely on.
GROUPS = {
    "core": ("base", "collect", "eval"),  # eval: lm_eval, imported only for --lm-eval
    "lens_tui": ("base", "collect"),
    "scripts": ("base", "collect", "samples", "dev"),
    "tests": ("base", "collect", "samples", "dev", "eval"),
    "benchmarks": ("base", "collect", "samples", "dev"),
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    """{group: normalised distribution names}, the base dependencies as ``base``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {
        group: {_normalise(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs}
        for group, specs in groups.items()
    }


def _imports(folder: Path) -> dict[str, Path]:
    """Top-level names of absolute imports in ``folder`` -> one file that imports each."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        if "__snapshots__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def _third_party(found: dict[str, Path]) -> dict[str, Path]:
    return {
        name: path
        for name, path in found.items()
        if name not in sys.stdlib_module_names and name not in FIRST_PARTY
    }


@pytest.mark.parametrize("folder", sorted(GROUPS))
def test_every_imported_package_is_declared(folder):
    declared = _declared()
    allowed = set().union(*(declared[g] for g in GROUPS[folder]))
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for name, path in sorted(_third_party(_imports(REPO / folder)).items()):
        if name in UNDECLARED:
            continue
        dists = {_normalise(d) for d in distributions.get(name, [name])}
        if not dists & allowed:
            missing.append(f"{name} ({path.relative_to(REPO)}) from {sorted(dists)}")
    assert not missing, f"imported in {folder}/ but not declared for it: {missing}"


def test_the_scan_sees_third_party_imports():
    """The scan finds what it must: pruning's lazy hub import, the builder's YAML."""
    assert "huggingface_hub" in _third_party(_imports(REPO / "core"))
    assert "yaml" in _third_party(_imports(REPO / "scripts"))
    assert "torch" in _third_party(_imports(REPO / "core"))
    assert "json" not in _third_party(_imports(REPO / "core"))


def test_samples_extra_serves_the_sample_builder_only():
    """pyyaml is declared for the sample builder alone, not for every collecting user."""
    declared = _declared()
    assert "pyyaml" in declared["samples"]
    assert "pyyaml" not in declared["base"] | declared["collect"]
    assert "tokenizers" not in declared["collect"]  # transformers brings it
    assert "huggingface-hub" in declared["base"]  # `lens prune` works without torch
