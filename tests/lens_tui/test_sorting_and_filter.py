"""The k9s / lazygit keys: sortable tables (o, O, header clicks) and the ``/`` bundle filter."""

from __future__ import annotations

import dataclasses

import pytest
from textual.widgets import DataTable, SelectionList

from core.engine import Profile, compare
from core.formats.evaluation import read_evaluation, write_evaluation
from core.matrix import MATRIX_KEYS, matrix
from core.predict import predict_vs_actual
from core.predictors import PREDICTORS
from lens_tui.app import build_app
from lens_tui.render import fmt
from lens_tui.views.compare import COLUMNS
from lens_tui.views.predict import COLUMNS as COLUMNS_PREDICT
from lens_tui.views.predict import PredictView, rank_cell, row_cells
from lens_tui.widgets.bundle_filter import BundleFilter
from lens_tui.widgets.sorting import ASCENDING, DESCENDING, TableSort, text_keys
from tests.lens_tui.helpers import async_test, write_bundles
from tests.lens_tui.study_fixture import write_study
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


def test_text_keys_rank_names_case_insensitively_and_over_keeps_a_column_still_there():
    names = ["m10", "M2", "m1", "m2", "b"]
    order = TableSort(("name",), "name").order(text_keys(names)).tolist()
    # By hand: b < m1 < m10 < m2 (as text, case folded); M2 and m2 tie, kept in row order.
    assert [names[i] for i in order] == ["b", "m1", "m10", "M2", "m2"]
    sort = TableSort(("name", "x", "y"), "name", largest_first=frozenset({"x", "y"}))
    sort.sort_by("x")
    sort.reverse()  # x, smallest first: kept as it is while x is still a column
    kept = sort.over(("name", "x"), "name", frozenset({"x"}))
    assert (kept.column, kept.descending, kept.columns) == ("x", False, ("name", "x"))
    back = kept.over(("name", "y"), "y", frozenset({"y"}))  # x gone: y, largest first
    assert (back.column, back.descending) == ("y", True)


# ---------------------------------------------------------------------- Predict's two tables


def sorted_by_rule(values: list, descending: bool) -> list[int]:
    """Row positions in the app's order, spelled out: values by value (Python's stable sort,
    so ties keep their positions either way), then the missing ones in position order."""
    present = [i for i, v in enumerate(values) if v is not None]
    missing = [i for i, v in enumerate(values) if v is None]
    return sorted(present, key=lambda i: values[i], reverse=descending) + missing


@pytest.fixture
def study(tmp_path):
    """The predictor study, plus an evaluation of its masks but m10 on the other bundle's
    data (reversed losses): two data, masks named m0…m10 (m10 sorts before m2 as text), and
    only 2 masks calibrated on calib, too few for that evaluation's same-data ρ."""
    paths = write_study(tmp_path / "study")
    heldout = read_evaluation(paths["eval"])
    masks = [
        dataclasses.replace(r, loss_increase=0.5 - r.loss_increase, top1_agreement=0.8 + i / 100)
        for i, r in enumerate(heldout.masks[:-1])
    ]
    other = dataclasses.replace(heldout, data="calib.txt", dataset="calib", masks=masks)
    write_evaluation(tmp_path / "study" / "calib-eval.json", other)
    return tmp_path / "study"


def mask_value(point, column: str, predictor: str):
    """The masks table's ``column`` of ``point`` as it sorts (names case-folded)."""
    return {
        "data": lambda: point.dataset.casefold(),
        "mask": lambda: point.mask.casefold(),
        "Δ loss": lambda: point.loss_increase,
        "x": lambda: point.predictors.get(predictor),
        "kept": lambda: point.retained_mass,
        "worst": lambda: point.retained_mass_min,
        "Jacc.": lambda: point.jaccard,
        "top-1": lambda: point.top1_agreement,
        "criterion": lambda: point.criterion.casefold(),
    }[column]()


def row_keys(table: DataTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


def cursor_key(table: DataTable) -> str:
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


def marked(table: DataTable) -> list[str]:
    return [h for h in header_texts(table) if h.endswith((ASCENDING, DESCENDING))]


@async_test
async def test_predict_masks_table_sorts_by_every_column_and_follows_x(study):
    app = build_app([study])
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, "5")
        view = app.query_one(PredictView)
        table = app.query_one("#predict-table", DataTable)
        assert app.focused is table
        report = predict_vs_actual(list(app.evaluations), list(app.profiles))
        points = report.points
        assert len(points) == 21 and {p.dataset for p in points} == {"calib", "heldout"}
        numbers = list(range(1, len(points) + 1))
        assert header_texts(table)[0] == f"# {ASCENDING}" and row_keys(table) == list(
            map(str, numbers)
        )
        table.move_cursor(row=6)
        await pilot.pause()
        selected = cursor_key(table)

        def check(column: str, descending: bool) -> None:
            shown = [int(key) for key in row_keys(table)]
            for position, number in enumerate(shown):  # each row keeps its own cells
                cells = [str(c) for c in table.get_row_at(position)]
                assert cells == row_cells(number, points[number - 1], view.predictor)
            if column == "#":
                values = list(numbers)
            else:
                values = [mask_value(p, column, view.predictor) for p in points]
            assert shown == [i + 1 for i in sorted_by_rule(values, descending)], column
            marker = DESCENDING if descending else ASCENDING
            assert marked(table) == [f"{column} {marker}"]
            assert cursor_key(table) == selected  # the selected mask stays selected

        # o steps through every column: names and # ascending, figures largest first.
        figures = {"Δ loss", "x", "kept", "worst", "Jacc.", "top-1"}
        for column in [h for h, _ in COLUMNS_PREDICT][1:] + ["#"]:
            await settle(pilot, "o")
            check(column, column in figures)
        await settle(pilot, "O")
        check("#", True)
        await click_header(pilot, table, "Δ loss")
        check("Δ loss", True)
        await click_header(pilot, table, "Δ loss")
        check("Δ loss", False)
        # Sorted by x, the next predictor on x re-sorts the rows by its own values.
        await click_header(pilot, table, "x")
        check("x", True)
        before = row_keys(table)
        await settle(pilot, "p")
        assert view.predictor != "retained_mass"
        check("x", True)
        assert row_keys(table) != before
        # The tests table was never touched: still in its first order.
        assert marked(app.query_one("#predict-tests", DataTable)) == [f"data {ASCENDING}"]


@async_test
async def test_predict_tests_table_sorts_on_its_own_and_o_follows_the_table_in_view(study):
    app = build_app([study])
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, "5")
        view = app.query_one(PredictView)
        tests = app.query_one("#predict-tests", DataTable)
        masks = app.query_one("#predict-table", DataTable)
        report = predict_vs_actual(list(app.evaluations), list(app.profiles))
        rows = [(e, t) for e in report.evaluations for t in e.predictors]
        keys = [f"{e.evaluation}\x00{t.name}" for e, t in rows]
        assert len(rows) == 2 * len(PREDICTORS)
        groups = {"all masks": None, "same data": "same_data", "criterion mass": "criterion:mass"}

        def rho(test) -> float | None:
            return None if test is None else test.spearman

        def values(column: str) -> list:
            if column == "data":
                return [e.dataset.casefold() for e, _ in rows]
            if column == "predictor":
                return [t.name.casefold() for _, t in rows]
            if column == "all masks":
                return [rho(t.overall) for _, t in rows]
            return [rho(t.groups.get(groups[column])) for _, t in rows]

        def check(column: str, descending: bool) -> None:
            shown = row_keys(tests)
            assert shown == [keys[i] for i in sorted_by_rule(values(column), descending)], column
            for position, key in enumerate(shown):  # each row keeps its own cells
                evaluation, test = rows[keys.index(key)]
                cells = [str(c) for c in tests.get_row_at(position)]
                assert cells[1:4] == [evaluation.dataset, test.name, rank_cell(test.overall)]
            marker = DESCENDING if descending else ASCENDING
            assert marked(tests) == [f"{column} {marker}"]
            assert marked(masks) == [f"# {ASCENDING}"]  # the masks keep their own order

        # At first: by data (calib before heldout), each evaluation's predictors in order.
        check("data", False)
        # A missing ρ (the calib evaluation's 2 same-data masks are too few) sorts last.
        assert None in values("same data") and None not in values("all masks")
        tests.focus()
        await settle(pilot)
        for column, descending in (
            ("predictor", False),
            ("all masks", True),
            ("same data", True),
            ("criterion mass", True),
            ("data", False),
        ):
            await settle(pilot, "o")
            check(column, descending)
        await settle(pilot, "O")
        check("data", True)
        await click_header(pilot, tests, "same data")
        check("same data", True)
        await click_header(pilot, tests, "same data")
        check("same data", False)
        # What the screen shows of the new first row: whole cells, not cut at the headers'
        # widths (a table rebuilt in place was drawn before its columns were measured).
        evaluation, test = rows[keys.index(row_keys(tests)[0])]
        line = " ".join(screen_lines(app)[tests.region.y + 1].split())
        assert f"{evaluation.dataset} {test.name} {rank_cell(test.overall)}" in line
        # Enter still plots the predictor of the row it is on, wherever the sort put it.
        tests.move_cursor(row=3)
        await settle(pilot, "enter")
        assert view.predictor == rows[keys.index(cursor_key(tests))][1].name

        # The plot alone: no table to sort, so o / O are off (and not in the footer).
        await settle(pilot, "v")
        assert view.LAYOUTS[view._layout] == "-plot-only"
        assert not {"o", "O"} & set(app.screen.active_bindings)
        await settle(pilot, "o")
        check("same data", False)
        # The tests alone: o sorts them; the masks alone: o sorts the masks.
        await settle(pilot, "v")
        assert {"o", "O"} <= set(app.screen.active_bindings)
        await settle(pilot, "o")
        assert marked(tests) == [f"criterion mass {DESCENDING}"]
        await settle(pilot, "v", "o")
        assert marked(tests) == [f"criterion mass {DESCENDING}"]
        assert marked(masks) == [f"data {ASCENDING}"]


def assert_whole_cells_shown(app, table: DataTable) -> None:
    """The first rows on screen show every cell whole (collapsed spaces aside)."""
    top = round(table.scroll_y)
    for row in range(3):
        line = " ".join(screen_lines(app)[table.region.y + 1 + row].split())
        cells = " ".join(" ".join(str(c) for c in table.get_row_at(top + row)).split())
        assert cells in line, line


@async_test
async def test_predict_tables_refilled_for_a_new_x_show_whole_cells(study):
    """DataTable measures new rows once idle, after drawing them at the headers' widths; a
    table of the same size was not redrawn then (cells cut: 'heldou', 'retained_')."""
    app = build_app([study])
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, "5")
        tests = app.query_one("#predict-tests", DataTable)
        tests.focus()
        await settle(pilot, "p")
        assert app.query_one(PredictView).predictor == PREDICTORS[1]
        assert_whole_cells_shown(app, tests)
        assert_whole_cells_shown(app, app.query_one("#predict-table", DataTable))
