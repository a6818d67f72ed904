"""Render PNG screenshots of every view of the app from its own SVG screenshots.

    python scripts/screenshots.py [BUNDLES_OR_FOLDERS…] [--out screenshots]

Opens the app headless on the bundles (default: sample_stats/), drives it with
the same keys a user would press, exports Textual's SVG screenshot of each
view and converts it with ``rsvg-convert`` (Debian: apt-get install -y
librsvg2-bin). Textual's SVG asks for the "Fira Code" font; where that is not
installed, fontconfig would fall back to a proportional font, so the SVG is
pointed at an installed monospace font, and told to keep its spaces, before
conversion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lens_tui.app import build_app  # noqa: E402

#: (file stem, terminal size, keys pressed after start-up)
SHOTS: list[tuple[str, tuple[int, int], list[str]]] = [
    ("compare-80x24", (80, 24), []),
    ("compare-160x48", (160, 48), ["plus", "plus", "right_square_bracket"]),
    ("compare-layers-80x24", (80, 24), ["l", "down", "down"]),
    ("ablation-80x24", (80, 24), ["2"]),
    ("ablation-160x48", (160, 48), ["2"]),
    ("matrix-80x24", (80, 24), ["3"]),
    ("matrix-160x48", (160, 48), ["3"]),
    ("collect-80x24", (80, 24), ["4"]),
    ("predict-80x24", (80, 24), ["5"]),
    ("predict-160x48", (160, 48), ["5"]),
    ("help-80x24", (80, 24), ["question_mark"]),
]
#: The same at frontier scale (L = 61, E = 384), on seeded synthetic bundles.
FRONTIER_SHOTS: list[tuple[str, tuple[int, int], list[str]]] = [
    ("frontier-compare-160x48", (160, 48), []),
    ("frontier-layers-160x48", (160, 48), ["l"]),
    ("frontier-compare-80x24", (80, 24), []),
]
MONO_FONTS = ("Fira Code", "DejaVu Sans Mono", "Liberation Mono", "Noto Sans Mono")


def installed_mono_font() -> str:
    for font in MONO_FONTS:
        found = subprocess.run(
            ["fc-match", "-f", "%{family}", font], capture_output=True, text=True
        )
        if found.returncode == 0 and font in found.stdout:
            return font
    return "monospace"


async def capture(paths: list[Path], size: tuple[int, int], keys: list[str]) -> str:
    app = build_app(paths)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()
        return app.export_screenshot(title="Expert Calibration Lens")


def to_png(svg: str, font: str, target: Path) -> None:
    svg = re.sub(r'font-family: ?"?Fira Code"?(, ?monospace)?;', f'font-family: "{font}";', svg)
    # Textual writes spaces as &#160;; without this rsvg strips them at the start of a run.
    svg = svg.replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg_path = target.with_suffix(".svg")
    svg_path.write_text(svg)
    subprocess.run(["rsvg-convert", str(svg_path), "-o", str(target)], check=True)
    svg_path.unlink()


def samples_design_shots() -> list[tuple[str, tuple[int, int], list[str]]]:
    """The Samples (6) and Design (7) views: each key waits for the view's worker."""
    return [
        ("samples-80x24", (80, 24), ["6", "down"]),
        ("samples-160x48", (160, 48), ["6", "down", "down"]),
        ("design-80x24", (80, 24), ["7"]),
        ("design-160x48", (160, 48), ["7"]),
    ]


async def capture_settled(paths: list[Path], size: tuple[int, int], keys: list[str]) -> str:
    """Like :func:`capture`, waiting for the workers after every key (the table must be there
    before a key moves in it)."""
    app = build_app(paths)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
        app.clear_notifications()
        await pilot.pause()
        return app.export_screenshot(title="Expert Calibration Lens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "sample_stats"])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument(
        "--no-frontier", action="store_true", help="skip the L=61, E=384 synthetic shots"
    )
    args = parser.parse_args()
    # The app remembers its settings between runs: start every shot from the defaults.
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="lens-screenshots-state-")
    if shutil.which("rsvg-convert") is None:
        sys.exit("error: rsvg-convert not found (apt-get install -y librsvg2-bin)")
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        sys.exit(f"error: {missing[0]}: no such file or folder")
    args.out.mkdir(parents=True, exist_ok=True)
    font = installed_mono_font()
    shots = [(args.paths, stem, size, keys) for stem, size, keys in SHOTS]
    if not args.no_frontier:
        from benchmarks.make_frontier_bundles import main as make_frontier

        frontier = Path(tempfile.mkdtemp(prefix="lens-frontier-")) / "bundles"
        make_frontier(["--out", str(frontier), "--bundles", "3", "--samples", "200"])
        shots += [([frontier], stem, size, keys) for stem, size, keys in FRONTIER_SHOTS]
    for paths, stem, size, keys in shots:
        svg = asyncio.run(capture(paths, size, keys))
        target = args.out / f"{stem}.png"
        to_png(svg, font, target)
        print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    for stem, size, keys in samples_design_shots():
        target = args.out / f"{stem}.png"
        to_png(asyncio.run(capture_settled(args.paths, size, keys)), font, target)
        print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


if __name__ == "__main__":
    main()
