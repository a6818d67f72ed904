"""The k9s / lazygit keys: sortable tables (o, O, header clicks) and the ``/`` bundle filter."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, SelectionList

from core.engine import Profile, compare
from core.matrix import MATRIX_KEYS, matrix
from lens_tui.app import build_app
from lens_tui.render import fmt
from lens_tui.views.compare import COLUMNS
from lens_tui.widgets.bundle_filter import BundleFilter
from lens_tui.widgets.sorting import ASCENDING, DESCENDING, TableSort
from tests.lens_tui.helpers import async_test, write_bundles
from tests.lens_tui.test_layout import screen_lines

SIZE = (160, 40)


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles", layers=9)


async def settle(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def header_texts(table: DataTable) -> list[str]:
    return [column.label.plain for column in table.ordered_columns]


async def click_header(pilot, table: DataTable, key: str) -> None:
    """Click the header cell of column ``key`` (all columns fit at SIZE)."""
    x = 0
    for column in table.ordered_columns:
        if column.key.value == key:
            break
        x += column.get_render_width(table)
    else:
        raise AssertionError(f"no column {key!r}")
    await pilot.click(table, offset=(x + 1, 0))
    await pilot.pause()


def test_table_sort_steps_reverses_and_clicks_like_samples_does():
    sort = TableSort(("layer", "js", "jaccard"), "layer", largest_first=frozenset({"js"}))
    assert (sort.marker("layer"), sort.marker("js")) == (ASCENDING, "")
    sort.step()  # a figure: largest first
    assert (sort.column, sort.descending, sort.marker("js")) == ("js", True, DESCENDING)
    sort.reverse()
    assert sort.label("js", "JS").plain == f"JS {ASCENDING}"
    assert sort.click("jaccard") and (sort.column, sort.descending) == ("jaccard", False)
    assert sort.click("jaccard") and sort.descending  # the same header again: reversed
    assert not sort.click("name")  # not sortable: nothing changes
    sort.step(2)
    assert sort.column == "js"
    assert sort.order([0.5, None, 0.7]).tolist() == [2, 0, 1]  # descending, the gap last


@async_test
async def test_compare_layer_table_sorts_by_key_and_click_and_keeps_the_layer(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await settle(
            pilot, "l", "right_square_bracket", "right_square_bracket", "right_square_bracket"
        )
        table = app.query_one("#layer-table", DataTable)
        assert app.layer == 3
        assert header_texts(table)[0] == f"layer {ASCENDING}"
        doc = compare(Profile.load(paths[0]), Profile.load(paths[1]), app.r).to_json()
        by_layer = {row["layer"]: row for row in doc["layers"]}

        def check(key: str, descending: bool) -> None:
            column = next(c for c in COLUMNS if c.id == key)
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            layers = [int(row[0]) for row in rows]
            assert sorted(layers) == list(range(9))
            # Each row's label stays with its numbers: the engine's row for that layer.
            for row in rows:
                expected = by_layer[int(row[0])]
                assert row[1:] == [fmt(c.value(expected), c.key) for c in COLUMNS]
            values = [column.value(by_layer[layer]) for layer in layers]
            pairs = list(zip(values, values[1:]))
            assert all((a >= b) if descending else (a <= b) for a, b in pairs), values
            # The selected layer is still selected, on its new row.
            assert app.layer == 3 and layers[table.cursor_row] == 3
            marker = DESCENDING if descending else ASCENDING
            index = [c.id for c in COLUMNS].index(key) + 1
            assert header_texts(table)[index].endswith(marker)
            assert sum(h.endswith((ASCENDING, DESCENDING)) for h in header_texts(table)) == 1

        await settle(pilot, "o")  # the next column: JS, largest first
        check("js_divergence", True)
        await settle(pilot, "O")
        check("js_divergence", False)
        await click_header(pilot, table, "retained_mass_a_to_b")
        check("retained_mass_a_to_b", True)
        await click_header(pilot, table, "retained_mass_a_to_b")
        check("retained_mass_a_to_b", False)
        # Moving in the sorted table selects the layer of the row moved to.
        await settle(pilot, "j")
        row = [str(c) for c in table.get_row_at(table.cursor_row)]
        assert app.layer == int(row[0]) and table.cursor_row == row_of_layer(table, app.layer)
        # A new r re-sorts by the new values; the selected layer follows.
        layer = app.layer
        await settle(pilot, "plus")
        doc = compare(Profile.load(paths[0]), Profile.load(paths[1]), app.r).to_json()
        by_layer = {row["layer"]: row for row in doc["layers"]}
        assert app.layer == layer and table.cursor_row == row_of_layer(table, layer)
        values = [
            by_layer[int(str(table.get_row_at(i)[0]))]["retained_mass_a_to_b"] for i in range(9)
        ]
        assert values == sorted(values)


def row_of_layer(table: DataTable, layer: int) -> int:
    return [int(str(table.get_row_at(i)[0])) for i in range(table.row_count)].index(layer)


@async_test
async def test_matrix_rows_sort_by_a_column_and_their_names_stay_fixed(paths):
    app = build_app(paths)
    async with app.run_test(size=(80, 30)) as pilot:
        await settle(pilot, "3")
        doc = matrix([Profile.load(p) for p in paths], app.r).to_json()
        await settle(pilot, "o")  # by bundle #1's column, largest first
        for key in MATRIX_KEYS:
            table = app.query_one(f"#matrix-{key}", DataTable)
            assert header_texts(table) == ["bundle", f"#1 {DESCENDING}", "#2", "#3"]
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
            numbers = [int(row[0].split()[0][1:]) for row in rows]
            for row, number in zip(rows, numbers):  # each name keeps its own numbers
                assert row[1:] == [fmt(v, key) for v in doc[key][number - 1]]
            column = [doc[key][number - 1][0] for number in numbers]
            assert column == sorted(column, reverse=True)
        await settle(pilot, "O", "o")  # reversed, then the next column keeps largest first
        table = app.query_one("#matrix-js_divergence", DataTable)
        assert header_texts(table)[2] == f"#2 {DESCENDING}"
        numbers = [int(str(table.get_row_at(i)[0]).split()[0][1:]) for i in range(3)]
        column = [doc["js_divergence"][n - 1][1] for n in numbers]
        assert column == sorted(column, reverse=True)
        # Scrolled sideways, every row still starts with its name (the fixed column).
        table.styles.width = 20
        await settle(pilot, "right", "right")
        assert table.scroll_x > 0
        lines = screen_lines(app)
        top = table.region.y
        for i, number in enumerate(numbers):
            assert f"#{number} {('alpha', 'beta', 'gamma')[number - 1]}" in lines[top + 1 + i]


@async_test
async def test_slash_filters_the_bundle_lists_and_a_b_keys_by_name(paths):
    app = build_app(paths)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "3")
        bar = app.query_one(BundleFilter)
        assert not bar.display
        await settle(pilot, "slash", "G", "a")  # case-insensitive: "Ga" matches gamma only
        assert app.focused is bar.input and bar.display
        assert app.selection.name_filter == "Ga" and app.selection.shown == [2]
        picker = app.query_one("#matrix-bundles", SelectionList)
        assert [picker.get_option_at_index(i).value for i in range(picker.option_count)] == [2]
        count = str(bar.query_one("#filter-count").render())
        assert "1 of 3 bundles shown" in count and "A, B kept (filtered out ⊘)" in count
        controls = str(app.query_one("#controls").render())
        assert controls.count("⊘") == 2
        # The filter hides A and B without changing them; the matrix needs two shown bundles.
        assert (app.a, app.b) == (0, 1)
        assert "tick at least two bundles shown by the filter" in str(
            app.query_one("#matrix-message").render()
        )
        await settle(pilot, "enter")  # keeps the filter; the keys go back to the view
        assert app.selection.name_filter == "Ga" and bar.display
        assert app.focused is picker
        await settle(pilot, "space")  # unticks gamma; alpha and beta (hidden) stay ticked
        assert app.selection.ticked == frozenset({0, 1})
        await settle(pilot, "a")  # a moves within the filtered set
        assert app.a == 2
        # The Design lists narrow too.
        await settle(pilot, "7")
        for picker_id in ("#design-candidates", "#design-targets"):
            assert app.query_one(picker_id, SelectionList).option_count == 1
        # Widened to "a" (alpha, beta, gamma all contain it), then cleared with escape.
        await settle(pilot, "slash", "backspace")
        assert app.selection.shown == [0, 1, 2]
        await settle(pilot, "b", "e", "t")
        assert app.selection.shown == [1]
        await settle(pilot, "escape")
        assert app.selection.name_filter == "" and not bar.display
        assert app.focused is not bar.input
        for picker_id in ("#design-candidates", "#design-targets"):
            assert app.query_one(picker_id, SelectionList).option_count == 3
        # Opened and left with tab, nothing typed: the bar closes again.
        await settle(pilot, "slash")
        assert bar.display
        await settle(pilot, "tab")
        assert not bar.display and app.selection.name_filter == ""


@async_test
async def test_design_table_sorts_by_worst_target_and_by_each_target(paths):
    app = build_app(paths)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "7")
        view = app.query_one("#design-view")
        doc = view.result.to_json()
        scores = {"design (mix)": doc["design"], "selection": doc["selection"]}
        scores |= {("uniform mix" if k == "uniform" else k): v for k, v in doc["baselines"].items()}
        targets = list(doc["design"]["per_target"])
        table = app.query_one("#design-table", DataTable)

        def shown_column(value) -> list:
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            assert sorted(row[0] for row in rows) == sorted(scores)
            return [value(scores[row[0]]) for row in rows]

        assert header_texts(table)[:2] == ["set", f"worst {DESCENDING}"]
        worst = shown_column(lambda s: s["value"])
        assert worst == sorted(worst, reverse=True)
        await settle(pilot, "o", "O")  # the first target's column, smallest first
        assert header_texts(table)[2] == f"{targets[0]} {ASCENDING}"
        first = shown_column(lambda s: s["per_target"][targets[0]])
        assert first == sorted(first)
