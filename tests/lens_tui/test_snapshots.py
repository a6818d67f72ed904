"""Snapshot tests of every view at fixed sizes (pytest-textual-snapshot; sync tests only).

Update after an intended change with ``pytest tests/lens_tui/test_snapshots.py --snapshot-update``
and look at the SVGs before committing them.
"""

from __future__ import annotations

import pytest

from lens_tui.app import build_app
from lens_tui.views.compare import CompareView
from tests.conftest import make_bundle
from tests.lens_tui.helpers import write_frontier_bundles

SMALL = (80, 24)
LARGE = (160, 48)


def settled(*keys: str):
    """Press ``keys``, waiting for the views' workers (intervals, analyses, designs) after each,
    and at the end for the verdict's height to be fitted, so that a shot never catches a
    figure half computed."""

    async def run(pilot) -> None:
        for key in ("", *keys):
            if key:
                await pilot.press(key)
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        compare = pilot.app.query_one(CompareView)
        while compare.verdict_fitting:  # a shorter verdict gives back its lines once at rest
            await pilot.pause(0.1)
        await pilot.pause()

    return run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snap") / "bundles"
    for i, name in enumerate(("news_en", "wiki_en", "dialogue_it", "code_py")):
        make_bundle(
            folder / f"{name}.safetensors",
            n=64,
            layers=12,
            experts=16,
            top_k=2,
            seed=100 + i,
            concentration=0.15 + 0.25 * i,
        )
    return folder


def test_compare_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=SMALL, run_before=settled())


def test_compare_layers_80x24(snap_compare, folder):
    assert snap_compare(
        build_app([folder]), terminal_size=SMALL, run_before=settled("b", "down", "down", "l")
    )


def test_compare_160x48(snap_compare, folder):
    assert snap_compare(
        build_app([folder]),
        terminal_size=LARGE,
        run_before=settled("plus", "plus", "right_square_bracket"),
    )


def test_ablation_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=SMALL, run_before=settled("2", "s"))


def test_matrix_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=SMALL, run_before=settled("3"))


def test_matrix_160x48(snap_compare, folder):
    assert snap_compare(
        build_app([folder]), terminal_size=LARGE, run_before=settled("3", "down", "space")
    )


def test_collect_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=SMALL, run_before=settled("4"))


def test_help_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), press=["question_mark"], terminal_size=SMALL)


def test_ablation_160x48(snap_compare, folder):
    assert snap_compare(build_app([folder]), press=["2"], terminal_size=LARGE)


def test_collect_160x48(snap_compare, folder):
    assert snap_compare(build_app([folder]), press=["4"], terminal_size=LARGE)


# Frontier scale: L = 61, E = 384 (seeded, small N). Sparklines bin layers; the expert
# chart is sorted by mass with A's top-r boundary.
@pytest.fixture(scope="module")
def frontier(tmp_path_factory):
    return write_frontier_bundles(tmp_path_factory.mktemp("frontier") / "bundles")


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
@pytest.mark.parametrize(
    ("view", "press"),
    [
        ("compare", []),
        ("compare_layers", ["l"]),
        ("ablation", ["2"]),
        ("matrix", ["3"]),
        ("predict", ["5"]),
    ],
)
def test_frontier(snap_compare, frontier, view, press, size):
    # Settled like the others: the intervals (a child process) and the Matrix view's
    # first reading of the bundles must not race the shot.
    assert snap_compare(build_app([frontier]), terminal_size=size, run_before=settled(*press))


def test_samples_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=SMALL, run_before=settled("6", "down"))


def test_samples_160x48(snap_compare, folder):
    assert snap_compare(
        build_app([folder]), terminal_size=LARGE, run_before=settled("6", "o", "down")
    )


def test_design_80x24(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=SMALL, run_before=settled("7"))


def test_design_160x48(snap_compare, folder):
    assert snap_compare(build_app([folder]), terminal_size=LARGE, run_before=settled("7"))
