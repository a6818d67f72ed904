"""Helpers for driving the app in tests: fixture bundles and reading what is on screen."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from textual.app import App
from textual.geometry import Region
from textual.widget import Widget

from tests.conftest import make_bundle

#: Three bundles of one model (4 layers, 8 experts) with different routing, plus their order.
NAMES = ("alpha", "beta", "gamma")


def write_bundles(folder: Path, layers: int = 4, experts: int = 8) -> list[Path]:
    """Three bundles sorted by name (the order the app loads a folder in)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_bundle(
            folder / f"{name}.safetensors",
            n=24 + 6 * i,
            layers=layers,
            experts=experts,
            seed=10 + i,
            concentration=0.2 + 0.3 * i,
            energy=i != 2,
        )
        for i, name in enumerate(NAMES)
    ]


def screen_text(widget: Widget) -> str:
    """The characters ``widget`` paints (border included), line by line."""
    width, height = widget.region.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


def record_notifications(app: App) -> list[tuple[str, str]]:
    """Record (severity, message) of every notification ``app`` raises from now on.

    Call it before ``run_test`` so start-up notifications count too. Recording at
    the source means a notification that has already timed out is still seen.
    """
    seen: list[tuple[str, str]] = []
    original = app.notify

    def notify(message: str, *args, severity: str = "information", **kwargs):
        seen.append((severity, message))
        return original(message, *args, severity=severity, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return seen


def async_test(fn):
    """Run an ``async def`` test with asyncio (no pytest async plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def write_frontier_bundles(folder: Path, bundles: int = 3, samples: int = 48) -> Path:
    """A few seeded bundles of the frontier shape (L = 61, E = 384, top-8), small in N.

    The app's layout must hold at the layer and expert counts of Kimi-K2 /
    DeepSeek-V3; N only scales the load time, so tests keep it small.
    """
    from benchmarks.make_frontier_bundles import main

    args = ["--out", str(folder), "--bundles", str(bundles), "--samples", str(samples)]
    main([*args, "--tensors", "energy_sum", "--seed", "0"])
    return folder
