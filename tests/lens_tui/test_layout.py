"""Every view at 80×24: the footer keeps quit and help, and nothing is drawn outside a panel.

"Outside a panel" is a cell whose topmost widget is a bare container (a
scroll view, a tab pane, the screen) or a scrollbar: those draw no text of
their own, so a glyph there is a stray (a scrollbar thumb's ``▅▅`` beside a
panel border, a label painted past its widget).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.scrollbar import ScrollBar, ScrollBarCorner
from textual.widget import Widget
from textual.widgets import Footer

from lens_tui.app import build_app
from tests.lens_tui.helpers import async_test, write_frontier_bundles

SAMPLES = Path(__file__).resolve().parents[2] / "sample_stats"


@pytest.fixture(scope="module")
def frontier(tmp_path_factory):
    return write_frontier_bundles(tmp_path_factory.mktemp("frontier") / "bundles")


def screen_lines(app) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def is_bare(widget: Widget) -> bool:
    """A widget that paints no text itself: a scrollbar, or a container without a border."""
    if isinstance(widget, (ScrollBar, ScrollBarCorner)):
        return True
    return bool(widget.children) and not widget.styles.border.top[0]


def stray_glyphs(app) -> list[tuple[int, int, str, str]]:
    """(x, y, character, widget type) for every glyph drawn where no panel is."""
    stray = []
    for y, line in enumerate(screen_lines(app)):
        for x, char in enumerate(line):
            if char.strip():
                widget, _ = app.screen.get_widget_at(x, y)
                if is_bare(widget):
                    stray.append((x, y, char, type(widget).__name__))
    return stray


async def check_every_view(paths: list[Path]) -> None:
    app = build_app(paths)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for number, spec in enumerate(app.views, start=1):
            await pilot.press(str(number))
            await pilot.pause()
            await pilot.pause(0.2)  # lazy views mount and paint after the switch
            footer = app.screen.query_one(Footer)
            shown = screen_lines(app)[footer.region.y]
            assert "q Quit" in shown and "? Help" in shown, (spec.id, shown)
            assert stray_glyphs(app) == [], spec.id


@async_test
async def test_every_view_at_80x24_on_the_sample_bundles():
    await check_every_view([SAMPLES])


@async_test
async def test_every_view_at_80x24_at_frontier_scale(frontier):
    await check_every_view([frontier])
