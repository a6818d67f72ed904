"""What plain ``lens`` does: open the app on the sample bundles in ``sample_stats/``."""

from __future__ import annotations

from pathlib import Path

from core.formats.bundle import find_bundles


def default_sample_dir() -> Path:
    """``./sample_stats`` if present, else the one beside the installed package."""
    here = Path.cwd() / "sample_stats"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "sample_stats"


def default_paths() -> tuple[list[Path], str | None]:
    """The sample folder to open, or no paths and a notice saying why there is nothing."""
    folder = default_sample_dir()
    if folder.is_dir() and find_bundles([folder]):
        return [folder], None
    return [], (
        f"no sample bundles in {folder} yet. Open your own with `lens browse PATH…` "
        "or collect one in the Collect view (key 4)."
    )


def run_default() -> None:
    from lens_tui.app import build_app  # textual loads only when the app opens

    paths, notice = default_paths()
    build_app(paths, notice=notice).run()
