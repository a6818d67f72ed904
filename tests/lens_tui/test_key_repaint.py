"""What a new r costs the UI thread, by counts (never by time): issues 15 and 17.

A new r must repaint its point values at once while the intervals compute.
These tests pin the reasons it can: no per-sample work on the UI thread, a
partial screen update (not a full one), an expert chart drawn in the same
frame that converts only the rows on screen, and plotext panels read from
plotext's cells with the same result as its ANSI text. Timings are in
``benchmarks/bench_app.py`` and ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import threading

import pytest
from textual import _compositor
from textual.visual import Visual, visualize
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

import core.sample_sums
import core.uncertainty
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
    """At 160×50 the chart's top rows are in view until ``l``; the rest are not converted."""
    app = build_app(paths)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("plus")
        await pilot.pause()
        plot = app.query_one(ExpertPlot)
        on_screen = plot.region.intersection(app.query_one(CompareView).region).height
        assert 0 < on_screen < plot.size.height
        # The rows the compositor asked for (up to the view's bottom edge), not the whole chart.
        assert 0 < len(plot._strips) <= on_screen
        await pilot.press("l")  # the table and chart scroll into view: all of it is converted
        await pilot.pause()
        view = app.query_one(CompareView)
        assert plot.region.intersection(view.region).height == plot.size.height
        assert sorted(plot._strips) == list(range(plot.size.height))


@async_test
async def test_a_new_layer_draws_its_chart_at_once_not_a_frame_later(paths):
    """The chart is cheap: ``show_layer`` draws it before the frame that paints the numbers."""
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(CompareView)
        plot = app.query_one(ExpertPlot)
        for layer in (2, 1):
            view.show_layer(layer)  # no pause: nothing has been painted since
            assert plot.result is not None and plot.result.layer == layer
            assert f"layer {layer}:" in plot.rows()[0].plain


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


@pytest.mark.parametrize("size", [(160, 48), (80, 24), (100, 30)])
@async_test
async def test_plotext_rows_from_its_cells_equal_its_ansi_text(paths, size):
    """Every cell and style of the ablation curves (braille lines and a band)."""
    app = build_app(paths)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("2")
        await app.workers.wait_for_complete()
        await pilot.pause()
        ablation = app.query_one(AblationPlot)
        assert ablation.result is not None
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


@async_test
async def test_a_new_r_leaves_the_a_and_b_cards_undrawn(paths, monkeypatch):
    """Nothing on them depends on r (values, intervals): redrawing them cost every key."""
    from lens_tui.widgets.cards import MetricCard

    refreshed: list[str] = []
    original = MetricCard.refresh

    def refresh(self, *args, **kwargs):
        refreshed.append(self.id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MetricCard, "refresh", refresh)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        refreshed.clear()
        for _ in range(2):
            await pilot.press("plus")
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
    assert "card-ab" in refreshed  # the keys did change r
    assert "card-a" not in refreshed and "card-b" not in refreshed


@async_test
async def test_a_new_r_works_out_its_verdict_once(paths, monkeypatch):
    """The cards, the pending intervals and the known evidence each asked for it: four calls."""
    import lens_tui.views.compare as compare_view
    from lens_tui.views import compare_intervals

    monkeypatch.setattr(compare_intervals, "compute", lambda selection: None)  # never lands
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        calls: list[int] = []
        monkeypatch.setattr(compare_view, "verdict", counting(compare_view.verdict, calls))
        await pilot.press("plus")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert len(calls) == 1


@async_test
async def test_a_shorter_verdict_gives_back_its_lines_only_once_it_has_rested(paths):
    """Between keys the verdict only grows (a shrink and the next key's growth were two
    whole-screen layout passes); after ``VERDICT_FIT_S`` of rest it fits its text."""
    from rich.text import Text

    from lens_tui.views.compare import VERDICT_FIT_S

    app = build_app(paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause(VERDICT_FIT_S + 0.3)
        view = app.query_one(CompareView)
        widget = app.query_one("#verdict")
        view._set_verdict(Text("long " * 60))  # several lines at 80 columns
        await pilot.pause()
        tall = widget.size.height
        assert tall >= 4  # grown at once: never clipped
        view._set_verdict(Text("short"))
        await pilot.pause(VERDICT_FIT_S / 2)
        view._set_verdict(Text("short, again"))  # a change restarts the rest
        await pilot.pause(VERDICT_FIT_S * 0.7)
        assert widget.size.height == tall  # 1.2 × VERDICT_FIT_S since the shrink, not rested
        await pilot.pause(VERDICT_FIT_S * 0.6)
        await pilot.pause()
        assert widget.size.height == 1


@async_test
async def test_the_layer_table_stays_put_when_the_verdict_above_it_changes_height(paths):
    """Scrolled to the layers (``l``), a verdict growing or fitted shorter off screen
    must not move the table and chart under the reader's eyes."""
    from rich.text import Text

    from lens_tui.views.compare import VERDICT_FIT_S

    app = build_app(paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause(VERDICT_FIT_S + 0.3)
        await pilot.press("l")
        await pilot.pause()
        view = app.query_one(CompareView)
        table = app.query_one("#layer-table")
        where = table.region.y
        assert view.scroll_y > 0
        for text, wait in (("long " * 60, 0), ("short", VERDICT_FIT_S + 0.3)):
            view._set_verdict(Text(text))
            await pilot.pause(wait)
            await pilot.pause()
            await pilot.pause()
            assert table.region.y == where, text


@async_test
async def test_a_new_r_reads_only_the_columns_r_changes(paths, monkeypatch):
    """The univariate columns (A's and B's own metrics at τ) are the same arrays at every r:
    a new r reads and formats only the bivariate ones; a new τ reads them all again."""
    from core import metrics as m
    from core.engine import Comparison

    read: list[tuple[str, str | None]] = []
    original = Comparison.series

    def series(self, key, side=None):
        read.append((key, side))
        return original(self, key, side)

    monkeypatch.setattr(Comparison, "series", series)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        read.clear()
        await pilot.press("plus")
        await pilot.pause()
        assert sorted(read) == sorted((key, None) for key in m.BIVARIATE_KEYS)
        read.clear()
        await pilot.press("t")  # τ: every univariate column's array is new
        await pilot.pause()
        univariate = {(key, side) for key in m.UNIVARIATE_KEYS for side in ("a", "b")}
        assert univariate <= set(read)


@async_test
async def test_the_chart_out_of_view_is_not_refreshed_but_shows_the_new_figure_in_view(paths):
    """Refreshing a widget off screen makes Textual map every widget again: the chart,
    below the fold at 160×48, drops its drawn lines instead, and is drawn anew in view."""
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        plot = app.query_one(ExpertPlot)
        assert not app.screen.can_view_partial(plot)
        refreshed = []
        original = plot.refresh
        plot.refresh = lambda *args, **kwargs: refreshed.append(1) or original(*args, **kwargs)
        for _ in range(2):
            await pilot.press("plus")
            await pilot.pause()
        assert refreshed == []
        await pilot.press("l")  # the table and chart scroll into view
        await pilot.pause()
        assert app.screen.can_view_partial(plot)
        screen = [strip.text for strip in app.screen._compositor.render_strips()]
        title = f"marks: kept at r = {app.r}"
        assert any(title in line for line in screen), title
