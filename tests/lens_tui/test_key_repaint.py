"""What a new r costs the UI thread, by counts (never by time): issues 15 and 17.

A new r must repaint its point values at once while the intervals compute.
These tests pin the reasons it can: no per-sample work on the UI thread, a
partial screen update (not a full one), and an expert chart that converts only
the rows on screen, read from plotext's cells with the same result as its
ANSI text. Timings are in ``benchmarks/bench_app.py`` and ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from textual import _compositor
from textual.visual import Visual, visualize
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

import core.sample_sums
import core.uncertainty
from core.engine import LayerDistribution
from lens_tui.app import build_app
from lens_tui.render import BIVARIATE_LABELS
from lens_tui.views.compare import CompareView
from lens_tui.widgets.plots import AblationPlot, ExpertPlot
from lens_tui.widgets.sorting import ASCENDING, DESCENDING
from tests.lens_tui.helpers import async_test, screen_text, write_bundles

SIZE = (160, 48)

#: Functions that read or resample per-sample sums: the intervals' work, never a key's.
PER_SAMPLE = [
    (core.sample_sums, "blocked_sums"),
    (core.sample_sums, "sum_over_samples"),
    (core.uncertainty, "resampling_units"),
    (core.uncertainty, "bootstrap_compare"),
    (core.uncertainty, "permutation_test"),
]


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles")


def spy_on_ui_thread(monkeypatch, owner, name: str, calls: list[str]) -> None:
    """Count calls of ``owner.name`` made on the main (UI) thread."""
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)


@async_test
async def test_a_new_r_does_no_per_sample_work_on_the_ui_thread(paths, monkeypatch):
    calls: list[str] = []
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for owner, name in PER_SAMPLE:
            spy_on_ui_thread(monkeypatch, owner, name, calls)
        start = app.r
        for _ in range(3):
            await pilot.press("plus")
            await pilot.pause()
        assert app.r == start + 3
    assert calls == []


@async_test
async def test_a_new_r_updates_part_of_the_screen_not_all_of_it(paths, monkeypatch):
    """The selection is a reactive of the App: with Textual's default it repainted every widget."""
    full, partial = [], []
    monkeypatch.setattr(
        _compositor.Compositor,
        "render_full_update",
        counting(_compositor.Compositor.render_full_update, full),
    )
    monkeypatch.setattr(
        _compositor.Compositor,
        "render_partial_update",
        counting(_compositor.Compositor.render_partial_update, partial),
    )
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        full.clear()
        partial.clear()
        for _ in range(3):
            await pilot.press("plus")
            await pilot.pause()
    assert partial  # the keys did repaint
    assert full == []


@async_test
async def test_new_r_values_and_their_intervals_need_no_layout_pass(paths, monkeypatch):
    """A layout pass re-renders the whole screen (~50 ms at 160×48).

    The verdict gains or loses a line as the resampling test computes and
    lands; sized to its text both ways, it cost two passes on every new r.
    """
    from textual.screen import Screen

    layouts: list[int] = []
    monkeypatch.setattr(Screen, "_refresh_layout", counting(Screen._refresh_layout, layouts))
    app = build_app(paths)
    async with app.run_test(size=(80, 24)) as pilot:  # narrow: the verdict wraps
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("plus")  # the verdict may grow once, to its taller form
        await app.workers.wait_for_complete()
        await pilot.pause()
        layouts.clear()
        for _ in range(3):
            await pilot.press("plus")  # "resampling test …" while the intervals compute
            await pilot.pause()
            await app.workers.wait_for_complete()  # then the test's caption
            await pilot.pause()
        assert app.query_one(CompareView).intervals is not None
    assert layouts == []


@async_test
async def test_the_start_up_objects_are_frozen_out_of_the_garbage_collectors_passes(paths):
    """A full collection walked every object of the loaded app: 80 ms inside a keypress."""
    import gc

    gc.unfreeze()
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert gc.get_freeze_count() > 0
    gc.unfreeze()


def counting(function, calls: list):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted


@async_test
async def test_the_expert_chart_converts_only_the_rows_on_screen(paths):
    """At 160×48 the chart's top rows are on screen until ``l``; the rest are not converted."""
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("plus")
        await pilot.pause()
        plot = app.query_one(ExpertPlot)
        on_screen = plot.region.intersection(app.screen.region).height
        assert 0 < on_screen < plot.size.height
        # The rows the compositor asked for (up to the view's bottom edge), not the whole chart.
        assert 0 < len(shown_strips(plot)) <= on_screen
        await pilot.press("l")  # the table and chart scroll into view: all of it is converted
        await pilot.pause()
        view = app.query_one(CompareView)
        assert plot.region.intersection(view.region).height == plot.size.height
        assert len(shown_strips(plot)) == plot.size.height


def shown_strips(plot: ExpertPlot) -> list:
    """The strips converted so far for the figure on screen."""
    figure = plot._built_key(plot._figure)
    return next(strips for key, strips in plot._strips.items() if key[0] == figure)


def ansi_path_strips(plot: PlotextPlot) -> list[list]:
    """What textual-plotext shows: plotext's ANSI text, parsed by rich, rendered by Textual."""
    width, height = plot.size
    text = PlotextPlot.render(plot)
    return [
        list(strip)
        for strip in Visual.to_strips(plot, visualize(plot, text), width, height, plot.visual_style)
    ]


def line_api_strips(plot: PlotextPlot) -> list[list]:
    return [list(plot.render_line(y)) for y in range(plot.size.height)]


def distribution(experts: int, r: int, seed: int) -> LayerDistribution:
    rng = np.random.default_rng(seed)
    prob_a, prob_b = (rng.dirichlet(np.full(experts, 0.3)) for _ in range(2))
    kept_a = np.zeros(experts, bool)
    kept_a[np.argsort(-prob_a, kind="stable")[:r]] = True
    kept_b = np.zeros(experts, bool)
    kept_b[np.argsort(-prob_b, kind="stable")[:r]] = True
    return LayerDistribution(
        layer=1, r=r, prob_a=prob_a, prob_b=prob_b, kept_a=kept_a, kept_b=kept_b
    )


@pytest.mark.parametrize("size", [(160, 48), (80, 24), (100, 30)])
@async_test
async def test_chart_rows_from_plotext_cells_equal_its_ansi_text(paths, size):
    """Every cell and style of the charts, by number (8, 40 experts) and sorted (384)."""
    app = build_app(paths)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        plot = app.query_one(ExpertPlot)
        for experts, r, seed in ((8, 2, 0), (40, 10, 1), (384, 96, 2)):
            plot.show(distribution(experts, r, seed), key=("test", experts))
            assert line_api_strips(plot) == ansi_path_strips(plot), experts
        await pilot.press("2")  # the ablation curves draw braille lines and a band
        await pilot.pause(0.5)
        ablation = app.query_one(AblationPlot)
        if ablation.result is not None:
            assert line_api_strips(ablation) == ansi_path_strips(ablation)


@async_test
async def test_the_painted_header_follows_the_sort_marker(paths):
    """Header cells are cached by their text: a moved sort marker must still repaint."""
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        table = app.query_one("#layer-table", DataTable)
        header = screen_text(table).splitlines()[0]
        assert f"layer {ASCENDING}" in header
        await pilot.press("o")  # sort by the next column (JS), largest first
        await pilot.pause()
        header = screen_text(table).splitlines()[0]
        assert f"layer {ASCENDING}" not in header
        assert f"{BIVARIATE_LABELS['js_divergence']} {DESCENDING}" in header
