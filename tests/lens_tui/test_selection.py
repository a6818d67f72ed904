"""The app's shared state: one frozen Selection, clamped, and the views that watch it."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Markdown, Static, TabbedContent

from core.ablation import ablate
from core.engine import Profile, compare
from lens_tui.app import build_app
from lens_tui.help import HelpScreen
from lens_tui.render import BIVARIATE_LABELS, fmt
from lens_tui.selection import Selection
from lens_tui.views import registry
from lens_tui.views.ablation import AblationView
from lens_tui.views.base import SelectionView
from lens_tui.views.compare import CompareView
from lens_tui.views.matrix import MatrixView
from lens_tui.views.registry import ViewSpec
from lens_tui.widgets.cards import MetricCard
from tests.lens_tui.helpers import async_test, screen_text, write_bundles

SIZE = (100, 40)


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles")  # alpha, beta, gamma: L = 4, E = 8


@pytest.fixture
def profiles(paths):
    return [Profile.load(p) for p in paths]


# --------------------------------------------------------------------------- the value


def test_the_first_bundle_sets_r_to_a_quarter_and_the_second_becomes_b(profiles):
    selection, index = Selection().with_profile(profiles[0])
    assert (index, selection.a, selection.b, selection.r) == (0, 0, 0, 2)
    selection, index = selection.with_profile(profiles[1])
    assert (index, selection.a, selection.b) == (1, 0, 1)
    selection, index = selection.with_profile(profiles[2])
    assert (index, selection.b, selection.labels) == (2, 1, ("alpha", "beta", "gamma"))
    assert selection.ticked == {0, 1, 2}  # a new bundle is ticked for the matrix


def test_a_bundle_read_again_replaces_its_old_self_and_keeps_its_tick(profiles, paths):
    selection = Selection()
    for profile in profiles:
        selection, _ = selection.with_profile(profile)
    selection = selection.replace(ticked=frozenset({0, 2}))
    again = Profile.load(paths[1])
    replaced, index = selection.with_profile(again)
    assert index == 1 and replaced.profiles[1] is again and len(replaced.profiles) == 3
    assert replaced.ticked == {0, 2}


def test_replace_clamps_into_range(profiles):
    selection = Selection()
    for profile in profiles:
        selection, _ = selection.with_profile(profile)
    assert selection.replace(a=4, b=-1).a == 1  # 4 mod 3
    assert selection.replace(a=4, b=-1).b == 2  # -1 mod 3
    assert selection.replace(r=0).r == 1
    assert selection.replace(r=99).r == 8  # E
    assert selection.replace(layer=9).layer == 3  # L - 1
    assert selection.replace(layer=-2).layer == 0
    assert selection.replace(ticked=frozenset({1, 7})).ticked == {1}
    unchanged = selection.replace(r=selection.r)
    assert unchanged == selection


def test_an_empty_selection_is_left_as_given():
    assert Selection().replace(r=0, a=5).r == 0  # nothing loaded: nothing to clamp against


# --------------------------------------------------------------------------- views watching it


async def settle(pilot, app, *selectors: str) -> None:
    """Wait until the hidden (lazily mounted) views are mounted: a frame or more under load."""
    for _ in range(200):
        await pilot.pause()
        if all(app.query(selector) for selector in selectors):
            return
    raise AssertionError(f"not mounted: {selectors}")


@async_test
async def test_a_change_repaints_the_visible_view_and_marks_the_hidden_ones_stale(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, "#ablation-view", "#matrix-view")
        compare_view = app.query_one(CompareView)
        ablation, matrix_view = app.query_one(AblationView), app.query_one(MatrixView)
        assert not compare_view.stale
        assert ablation.stale and ablation.result is None  # mounted hidden: never painted

        await pilot.press("plus")  # r 2 → 3
        await pilot.pause()
        assert app.selection.r == 3
        assert not compare_view.stale and compare_view.comparison.r == 3
        expected = compare(Profile.load(paths[0]), Profile.load(paths[1]), 3).mean
        card = app.query_one("#card-ab", MetricCard)
        assert card.value(BIVARIATE_LABELS["jaccard"]) == fmt(expected["jaccard"], "jaccard")
        assert fmt(expected["jaccard"], "jaccard") in screen_text(card)
        assert ablation.stale and matrix_view.stale and ablation.result is None

        await pilot.press("2")  # shown: painted with the current selection
        await pilot.pause()
        assert not ablation.stale and ablation.result.r == 3
        assert ablation.result.to_final == ablate(Profile.load(paths[0]), 3, 1, 24).to_final
        painted = ablation.result

        await pilot.press("t")  # τ concerns Compare only
        await pilot.pause()
        assert ablation.result is painted and not ablation.stale
        assert compare_view.stale and compare_view.comparison.tau == 0.01

        await pilot.press("right_square_bracket")  # the layer too
        await pilot.pause()
        assert ablation.result is painted and compare_view.selected_layer == 0

        await pilot.press("1")
        await pilot.pause()
        assert not compare_view.stale
        assert compare_view.comparison.tau == 0.02 and compare_view.selected_layer == 1
        assert matrix_view.stale


@async_test
async def test_a_pick_in_a_view_goes_through_the_selection(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, "#matrix-bundles")
        await pilot.press("3")
        await pilot.pause()
        await pilot.press("space")  # untick the highlighted bundle (alpha)
        await pilot.pause()
        assert app.selection.ticked == {1, 2}
        assert app.query_one(CompareView).stale is False  # ticks are not Compare's concern
        await pilot.press("1", "l", "down")  # the layer table: the app's layer follows
        await pilot.pause()
        assert app.selection.layer == 1


# --------------------------------------------------------------------------- the registry


class CountView(SelectionView, Static, can_focus=True):
    """A view made up for the test: it says how many bundles are loaded and the budget."""

    SUMMARY = "how many bundles are loaded, and r."

    def show_selection(self, selection: Selection) -> None:
        self.update(f"r is {selection.r} with {len(selection.profiles)} bundles")


@async_test
async def test_registering_a_view_adds_its_tab_key_help_and_command(paths, monkeypatch):
    monkeypatch.setattr(registry, "VIEWS", list(registry.VIEWS))
    count = len(registry.VIEWS) + 1
    registry.register(ViewSpec("count", "Count", CountView, "Count the bundles"))
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, "#count-view")
        tabs = app.query_one("#views", TabbedContent)
        assert str(tabs.get_tab("count").label) == f"{count} Count"
        view = app.query_one("#count-view", CountView)
        assert view.stale  # hidden until its key is pressed
        await pilot.press(str(count))
        await pilot.pause()
        assert tabs.active == "count" and view.has_focus
        assert "r is 2 with 3 bundles" in screen_text(view)
        await pilot.press("plus")
        await pilot.pause()
        assert "r is 3 with 3 bundles" in screen_text(view)
        commands = {c.title for c in app.get_system_commands(app.screen)}
        assert "View: Count" in commands
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = app.screen.query_one(Markdown).source
        assert f"| everywhere | `{count}` | Count the bundles |" in shown
        assert "* **Count** — how many bundles are loaded, and r." in shown


def test_a_view_id_is_registered_once(monkeypatch):
    monkeypatch.setattr(registry, "VIEWS", list(registry.VIEWS))
    with pytest.raises(ValueError, match="compare"):
        registry.register(ViewSpec("compare", "Again", CountView, "again"))


# --------------------------------------------------------------------------- slow figures


class SlowView(SelectionView, Static):
    """Computes 10·r in a worker; the computation for r = 2 is held until ``gate`` opens."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.gate = threading.Event()
        self.delivered: list[int] = []

    def show_selection(self, selection: Selection) -> None:
        if not selection.profiles:  # mounted before the bundles load
            return
        self.update("computing")
        self.run_on_selection(selection, self._work, self._done)

    def _work(self, selection: Selection) -> int:
        if selection.r == 2:
            assert self.gate.wait(10)
        return 10 * selection.r

    def _done(self, value: int) -> None:
        self.delivered.append(value)
        self.update(f"value {value}")


@async_test
async def test_a_worker_result_is_shown_only_while_its_selection_is_current(paths, monkeypatch):
    monkeypatch.setattr(registry, "VIEWS", [])
    registry.register(ViewSpec("slow", "Slow", SlowView, "Slow figures"))
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(SlowView)
        assert "computing" in screen_text(view) and view.delivered == []  # r = 2 is held
        await pilot.press("plus")  # r = 3: computed at once and shown
        for _ in range(100):
            await pilot.pause(0.02)
            if view.delivered:
                break
        assert view.delivered == [30] and "value 30" in screen_text(view)
        view.gate.set()  # the r = 2 result arrives late: dropped
        await app.workers.wait_for_complete()
        await pilot.pause(0.1)
        assert view.delivered == [30] and "value 30" in screen_text(view)
