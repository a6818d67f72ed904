"""What plain ``lens`` does: open the sample bundles.

Until the Textual app lands this prints the N-way comparison of the bundles
in ``sample_stats/``.
"""

from __future__ import annotations

from pathlib import Path

from core.bundle import find_bundles
from core.engine import Profile
from core.errors import LensError
from core.matrix import matrix
from lens_tui import render


def default_sample_dir() -> Path:
    """``./sample_stats`` if present, else the one beside the installed package."""
    here = Path.cwd() / "sample_stats"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "sample_stats"


def run_default() -> None:
    folder = default_sample_dir()
    paths = find_bundles([folder])
    if len(paths) < 2:
        raise LensError(f"{folder}: needs at least two bundles (*.safetensors) to compare")
    profiles = [Profile.load(p) for p in paths]
    r = max(1, profiles[0].num_experts // 4)
    render.print_matrix(matrix(profiles, r))
