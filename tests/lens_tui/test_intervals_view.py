"""Compare's error bars (issue 15 in the app): computed in a worker, never blocking a key.

A gate replaces the worker's job so a test can hold it: the point values must
repaint while it is held, "…" stands in for the intervals, a newer selection
drops the older result, and the intervals finally shown equal
``core.uncertainty``'s for the same seed and replicate count.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core import metrics as m
from core import uncertainty as u
from core.ablation import ablate_shuffled
from core.engine import Profile, compare, verdict
from lens_tui.app import build_app
from lens_tui.intervals_process import CompareIntervals
from lens_tui.render import BIVARIATE_LABELS, fmt
from lens_tui.views import ablation as ablation_view
from lens_tui.views import compare_intervals as ci
from lens_tui.views.ablation import BAND_SHUFFLES, AblationView
from lens_tui.views.compare import CARD_LABELS, COLUMNS, CompareView
from lens_tui.widgets.cards import PENDING, MetricCard
from lens_tui.widgets.plots import AblationPlot
from tests.lens_tui.helpers import async_test, write_bundles

SIZE = (120, 40)


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles")


class Gate:
    """Stands in for ``compute``: each call waits until the test releases its r."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def event(self, r: int) -> threading.Event:
        with self.lock:
            return self.release.setdefault(r, threading.Event())

    def __call__(self, selection):
        self.started.append(selection.r)
        assert self.event(selection.r).wait(30), "the test never released this worker"
        return REAL_COMPUTE(selection)


REAL_COMPUTE = ci.compute


def expected_intervals(pa, pb, r, tau=m.DEFAULT_TAU):
    a, b = Profile.load(pa), Profile.load(pb)
    reps = ci.replicates_for(a, b)
    return (
        u.bootstrap_compare(a, b, r, tau, reps, seed=0),
        u.permutation_test(a, b, r, reps, seed=0),
        compare(a, b, r, tau),
    )


def card(app, side):
    return app.query_one(f"#card-{side}", MetricCard)


def assert_intervals_shown(app, pa, pb, r):
    """Every card interval, the layer line and the verdict against core.uncertainty (seed 0)."""
    boot, difference, comparison = expected_intervals(pa, pb, r)
    for key in m.BIVARIATE_KEYS:
        lo, hi = boot.bivariate.mean[key] if boot.bivariate.mean[key] is not None else (None, None)
        shown = card(app, "ab").interval(BIVARIATE_LABELS[key])
        if lo is None or np.isnan(lo):
            assert shown == "[—]", key
        else:
            assert shown == f"[{fmt(float(lo), key)}, {fmt(float(hi), key)}]", key
    for side, source in (("a", boot.univariate_a), ("b", boot.univariate_b)):
        for key in m.UNIVARIATE_KEYS:
            lo, hi = source.mean[key]
            assert card(app, side).interval(CARD_LABELS[key]) == (
                f"[{fmt(float(lo), key)}, {fmt(float(hi), key)}]"
            )
    text = str(app.query_one("#verdict").render())
    assert verdict(comparison, difference) in text.replace("\n", " ")
    assert "resampling noise" in text
    view = app.query_one(CompareView)
    layer = view.selected_layer
    line = str(app.query_one("#layer-ci").render())
    for column in COLUMNS:
        source = {"": boot.bivariate, "a": boot.univariate_a, "b": boot.univariate_b}[column.side]
        bars = source.layers[column.key]
        if bars is None:
            continue
        lo, hi = bars[layer]
        value = fmt(column.series(comparison)[layer], column.key)
        assert (
            f"{column.header} {value} [{fmt(float(lo), column.key)}, {fmt(float(hi), column.key)}]"
            in line
        )
    assert line.startswith(f"layer {layer}:")


@async_test
async def test_a_key_repaints_point_values_while_the_intervals_are_still_computing(
    paths, monkeypatch
):
    gate = Gate()
    monkeypatch.setattr(ci, "compute", gate)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert gate.started == [2]  # r = E/4 = 2 at start, held
        assert card(app, "ab").interval(BIVARIATE_LABELS["jaccard"]) == PENDING
        await pilot.press("plus")  # r = 3 while r = 2's worker is held: no wait
        await pilot.pause()
        expected = compare(Profile.load(paths[0]), Profile.load(paths[1]), 3).to_json()
        for key in m.BIVARIATE_KEYS:
            assert card(app, "ab").value(BIVARIATE_LABELS[key]) == fmt(expected["mean"][key], key)
            assert card(app, "ab").interval(BIVARIATE_LABELS[key]) == PENDING
        assert "resampling test …" in str(app.query_one("#verdict").render())
        assert PENDING in str(app.query_one("#layer-ci").render())

        # The older worker finishes first: its (r = 2) result must not be painted.
        gate.event(2).set()
        for _ in range(50):
            await pilot.pause(0.05)
        assert card(app, "ab").interval(BIVARIATE_LABELS["jaccard"]) == PENDING
        assert app.query_one(CompareView).intervals is None

        gate.event(3).set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert_intervals_shown(app, paths[0], paths[1], 3)


@async_test
async def test_intervals_follow_the_selection_and_moving_the_layer_keeps_them(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert_intervals_shown(app, paths[0], paths[1], 2)
        await pilot.press("b")  # B = paths[2] at r = 2: let its intervals finish first
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("plus", "right_square_bracket", "right_square_bracket")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.layer == 2
        assert_intervals_shown(app, paths[0], paths[2], 3)
        # Back to an earlier selection: the intervals come from the view's memory at once.
        await pilot.press("minus")
        await pilot.pause()
        assert app.query_one(CompareView).intervals is not None
        assert_intervals_shown(app, paths[0], paths[2], 2)


def test_large_bundles_get_fewer_replicates_and_the_screen_says_so(tmp_path):
    small = Profile.load(write_bundles(tmp_path / "s")[0])
    assert ci.replicates_for(small, small) == u.DEFAULT_REPLICATES

    class Fake:
        num_layers, num_experts = 61, 384

        class bundle:  # noqa: N801 - a stand-in for Bundle
            num_samples = 5000

    assert ci.replicates_for(Fake, Fake) == ci.LARGE_REPLICATES  # type: ignore[arg-type]
    result = CompareIntervals(
        u.bootstrap_compare(small, small, 2, replicates=ci.LARGE_REPLICATES),
        u.permutation_test(small, small, 2, ci.LARGE_REPLICATES),
    )
    assert "100 replicates" in ci.caption(result) and "fewer" in ci.caption(result)


@async_test
async def test_ablation_band_is_core_ablate_shuffled_and_follows_the_step(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        for keys in (["2"], ["s"]):  # then the step doubles: a new band
            await pilot.press(*keys)
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            view = app.query_one(AblationView)
            expected = ablate_shuffled(
                Profile.load(paths[0]), app.r, view.step, view.cap, BAND_SHUFFLES, 0
            ).to_json(view.threshold)
            assert view.spread == expected
            plot = app.query_one(AblationPlot)
            assert plot.result is view.result
            status = str(app.query_one("#ablation-status").render())
            lo, hi = expected["converged_at_range"]
            assert f"over {BAND_SHUFFLES} random orders (seed 0)" in status
            if lo is None:
                assert "converged within the data in none of them" in status
            else:
                assert f"range {lo}–{'beyond the data' if hi is None else hi}" in status
                median = expected["converged_at_median"]
                assert ("not within the data" if median is None else f"n = {median:g}") in status


@async_test
async def test_ablation_band_shows_dots_while_computing(paths, monkeypatch):
    release = threading.Event()
    real = ablation_view.ablate_shuffled

    def held(*args, **kwargs):
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(ablation_view, "ablate_shuffled", held)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await pilot.pause()
        view = app.query_one(AblationView)
        assert view.result is not None and view.spread is None  # the curve at once
        assert "random orders: …" in str(app.query_one("#ablation-status").render())
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.spread is not None


@async_test
async def test_a_new_r_keeps_the_univariate_intervals_and_a_new_tau_does_not(paths, monkeypatch):
    """The univariate metrics and their bootstrap do not depend on r: the A and B cards keep
    their intervals (those of the new r, computed here independently) while r's compute."""
    gate = Gate()
    monkeypatch.setattr(ci, "compute", gate)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        gate.event(2).set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("plus")  # r = 3, held
        await pilot.pause()
        assert gate.started[-1] == 3 and app.query_one(CompareView).intervals is None
        boot, _, _ = expected_intervals(paths[0], paths[1], 3)
        for side, source in (("a", boot.univariate_a), ("b", boot.univariate_b)):
            for key in m.UNIVARIATE_KEYS:
                lo, hi = source.mean[key]
                assert card(app, side).interval(CARD_LABELS[key]) == (
                    f"[{fmt(float(lo), key)}, {fmt(float(hi), key)}]"
                )
        for key in m.BIVARIATE_KEYS:
            assert card(app, "ab").interval(BIVARIATE_LABELS[key]) == PENDING
        line = str(app.query_one("#layer-ci").render())
        layer = app.query_one(CompareView).selected_layer
        lo, hi = boot.univariate_a.layers["n_eff"][layer]
        assert f"[{fmt(float(lo), 'n_eff')}, {fmt(float(hi), 'n_eff')}]" in line
        assert f"{BIVARIATE_LABELS['jaccard']} " in line and PENDING in line
        await pilot.press("t")  # a new τ: sparsity's intervals change, so all go back to "…"
        await pilot.pause()
        assert card(app, "a").interval(CARD_LABELS["sparsity_pct"]) == PENDING
        for event in list(gate.release.values()) + [gate.event(3)]:
            event.set()
        for r in range(1, 9):
            gate.event(r).set()
        await app.workers.wait_for_complete()
