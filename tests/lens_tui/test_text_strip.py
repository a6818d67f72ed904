"""``TextRows``: a widget drawn from one text per row, each row's strip kept until it changes."""

from __future__ import annotations

from rich.text import Text
from textual.app import App
from textual.reactive import reactive

from lens_tui.selection import Selection
from lens_tui.widgets.controls import ControlBar
from lens_tui.widgets.text_strip import TextRows, WrappedText
from tests.lens_tui.helpers import async_test, screen_text


class Rows(TextRows):
    def __init__(self) -> None:
        super().__init__(id="rows")
        self.lines = ["first", "second", "third"]
        self.asked = 0

    def text_rows(self, width: int) -> list[Text]:
        self.asked += 1
        return [Text(line, style="bold" if i == 1 else "") for i, line in enumerate(self.lines)]


class Host(App[None]):
    CSS = "Rows { height: 4; } ControlBar { height: 1; }"
    selection = reactive(Selection)  # what the control bar watches (here: nothing loaded)

    def compose(self):
        yield Rows()
        yield ControlBar(id="bar")


@async_test
async def test_rows_are_drawn_and_only_a_changed_row_is_drawn_again():
    app = Host()
    async with app.run_test(size=(20, 6)) as pilot:
        await pilot.pause()
        rows = app.query_one(Rows)
        assert screen_text(rows).splitlines() == [
            "first".ljust(20),
            "second".ljust(20),
            "third".ljust(20),
            " " * 20,
        ]
        strips = [rows.render_line(y) for y in range(3)]
        rows.lines = ["first", "SECOND", "third"]
        rows.refresh()
        await pilot.pause()
        again = [rows.render_line(y) for y in range(3)]
        assert again[0] is strips[0] and again[2] is strips[2]  # kept
        assert again[1] is not strips[1] and again[1].text.startswith("SECOND")
        assert any(segment.style and segment.style.bold for segment in again[1])
        asked = rows.asked
        screen_text(rows)  # one frame of four lines asks for the rows once
        assert rows.asked == asked + 1


@async_test
async def test_the_control_bar_cuts_a_long_line_with_an_ellipsis():
    cases = (("abcdefghijklmnopqrstuvwxyz", "abcdefghijk…"), ("short", "short".ljust(12)))
    async with Host().run_test(size=(12, 6)) as pilot:
        bar = pilot.app.query_one(ControlBar)
        for line, shown in cases:
            bar.line = Text(line)
            bar.refresh()
            await pilot.pause()
            assert screen_text(bar) == shown


@async_test
async def test_wrapped_text_breaks_between_words_and_sizes_itself_only_when_asked():
    class Page(App[None]):
        def compose(self):
            yield WrappedText(id="text")

    async with Page().run_test(size=(20, 8)) as pilot:
        widget = pilot.app.query_one(WrappedText)
        words = "alpha beta gamma delta epsilon zeta eta theta"
        assert widget.show(Text(words, style="bold")) != 0  # one line to three: a layout
        await pilot.pause()
        rows = [line.rstrip() for line in screen_text(widget).splitlines()]
        # Greedy by hand at 20 columns: "alpha beta gamma" (16) + " delta" > 20, and so on.
        assert rows == ["alpha beta gamma", "delta epsilon zeta", "eta theta"]
        assert str(widget.render()) == words  # the text itself, as Static renders it
        assert widget.show(Text("short"), grow_only=True) == 0  # keeps three lines
        await pilot.pause()
        assert widget.size.height == 3
        assert widget.show(Text("short")) == -2
        await pilot.pause()
        assert widget.size.height == 1 and screen_text(widget).rstrip() == "short"
