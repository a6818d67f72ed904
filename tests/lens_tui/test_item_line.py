"""``ItemLine``: items packed whole between `` · `` separators, drawn line by line."""

from __future__ import annotations

from textual.app import App

from lens_tui.widgets.item_line import ItemLine, pack
from tests.lens_tui.helpers import async_test, screen_text


def texts(lines) -> list[str]:
    return ["".join(text for text, _ in line) for line in lines]


def item(text: str) -> list[tuple[str, str]]:
    return [(text, "")]


def test_items_pack_greedily_and_never_split():
    items = [item("a" * 10), item("b" * 10), item("c" * 10), item("d" * 4)]
    # "h: " (3) + 10 = 13; + " · " + 10 = 26 > 25: b starts the next line; b · c = 23 <= 25;
    # + " · dddd" = 30 > 25: d on the third line.
    lines = pack([("h: ", "bold")], items, 25)
    assert texts(lines) == ["h: " + "a" * 10, "b" * 10 + " · " + "c" * 10, "d" * 4]
    assert all(len(text) <= 25 for text in texts(lines))


def test_a_line_holds_exactly_its_width():
    lines = pack([], [item("x" * 5), item("y" * 5)], 13)  # 5 + 3 + 5 = 13
    assert texts(lines) == ["xxxxx · yyyyy"]
    assert texts(pack([], [item("x" * 5), item("y" * 5)], 12)) == ["xxxxx", "yyyyy"]


def test_an_item_wider_than_the_line_stands_alone_and_nothing_is_lost():
    lines = pack([("head ", "")], [item("w" * 30), item("z")], 10)
    assert texts(lines) == ["head ", "w" * 30, "z"]
    assert pack([], [], 10) == []
    assert texts(pack([("only head", "")], [], 10)) == ["only head"]


def test_wide_characters_count_as_two_cells():
    assert texts(pack([], [item("漢字"), item("ab")], 8)) == ["漢字", "ab"]  # 4 + 3 + 2 > 8
    assert texts(pack([], [item("漢字"), item("a")], 8)) == ["漢字 · a"]


@async_test
async def test_the_widget_draws_the_packed_lines_and_lays_out_only_when_their_count_changes():
    class Host(App[None]):
        def compose(self):
            yield ItemLine(id="line")

    app = Host()
    async with app.run_test(size=(30, 10)) as pilot:
        line = app.query_one(ItemLine)
        line.show([("L: ", "bold")], [item("one 1.0"), item("two 2.0"), item("three 3.0")])
        await pilot.pause()
        expected = texts(
            pack([("L: ", "bold")], [item("one 1.0"), item("two 2.0"), item("three 3.0")], 30)
        )
        assert line.size.height == len(expected) == 2
        assert [row.rstrip() for row in screen_text(line).splitlines()] == expected
        layouts = []
        original = line.refresh

        def refresh(*args, layout: bool = False, **kwargs):
            layouts.append(layout)
            return original(*args, layout=layout, **kwargs)

        line.refresh = refresh
        line.show([("L: ", "bold")], [item("one 1.5"), item("two 2.5"), item("three 3.5")])
        line.show([("L: ", "bold")], [item("one 1.5"), item("two 2.5"), item("three 3.5")])
        assert layouts == [False]  # same line count: a repaint; the same items: nothing
        line.show([("L: ", "bold")], [item("a" * 20), item("b" * 20), item("x" * 25)])
        assert layouts == [False, True]
        await pilot.pause()
        assert line.size.height == 3
        assert "x" * 25 in screen_text(line)
