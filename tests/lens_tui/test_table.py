"""``ValueCachedTable``: its plain-cell drawing equals ``DataTable``'s, character by character."""

from __future__ import annotations

import contextlib
import functools

import pytest
from rich.style import Style
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from lens_tui.app import build_app
from lens_tui.widgets.table import ValueCachedTable
from tests.lens_tui.helpers import async_test, write_bundles


def characters(lines) -> list[list[tuple[str, Style | None]]]:
    """Each line as (character, style) pairs: equal however the runs are cut into segments."""
    return [[(ch, segment.style) for segment in line for ch in segment.text] for line in lines]


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles")


@contextlib.asynccontextmanager
async def layer_table(paths):
    """The Compare view's layer table at 160×48, in view (``l``), with the pilot driving it."""
    app = build_app(paths)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        yield pilot, app.query_one("#layer-table", ValueCachedTable)


@async_test
async def test_plain_cells_draw_as_datatable_draws_them(paths):
    async with layer_table(paths) as (pilot, table):
        # A styled cell and a left-justified one beside the view's right-justified numbers.
        table.update_cell_at((0, 1), Text("styled", style="bold red"))
        table.update_cell_at((1, 1), Text("left", justify="left"))
        base = Style(color="#dddddd", bgcolor="#202020")
        checked = 0
        for row in range(table.row_count):
            for column in range(len(table.columns)):
                width = table.ordered_columns[column].get_render_width(table)
                for cursor in (False, True):
                    for hover in (False, True):
                        cell = table.get_cell_at((row, column))
                        height = table.ordered_rows[row].height
                        fast = table._plain_cell(
                            cell, height, row, column, base, width, cursor, hover
                        )
                        if fast is None:
                            assert cell.style or cell.spans, (row, column)  # only styled text
                            continue
                        drawn = DataTable._render_cell(
                            table, row, column, base, width, cursor, hover
                        )
                        assert characters(fast) == characters(drawn), (row, column, cursor)
                        checked += 1
        assert checked >= 4 * 3 * len(table.columns)


def segments_characters(cells) -> list[tuple[str, Style | None]]:
    """A row's cells (lists of segments) as (character, style) pairs, in order."""
    return [(ch, segment.style) for cell in cells for segment in cell for ch in segment.text]


@async_test
async def test_plain_rows_draw_as_datatable_draws_them(paths):
    async with layer_table(paths) as (pilot, table):
        assert table.fixed_columns == 1 and table.cursor_type == "row"
        # DataTable's own drawing, cell by cell through rich (not this class's cell path).
        table._render_cell = functools.partial(DataTable._render_cell, table)
        base = Style(color="#dddddd", bgcolor="#202020")
        checked = 0
        for focused, show_hover in ((True, False), (True, True), (False, True)):
            table._show_hover_cursor = show_hover  # set by the mouse; hover draws only then
            if focused:
                table.focus()
            else:
                table.screen.set_focus(None)
            await pilot.pause()
            table._pseudo_class_state = table.get_pseudo_class_state()
            for row in range(table.row_count):
                key = table.ordered_rows[row].key
                for cursor_row in (row, row + 1):
                    for hover_row in (row, row + 2):
                        cursor, hover = Coordinate(cursor_row, 0), Coordinate(hover_row, 3)
                        fast = table._plain_row(key, 0, base, cursor_row, hover_row)
                        assert fast is not None, row
                        table._clear_caches()
                        drawn = DataTable._render_line_in_row(table, key, 0, base, cursor, hover)
                        for mine, theirs in zip(fast, drawn, strict=True):  # fixed, scrollable
                            assert segments_characters(mine) == segments_characters(theirs), (
                                row,
                                cursor_row,
                                hover_row,
                                focused,
                                show_hover,
                            )
                        checked += 1
        assert checked == 3 * 4 * table.row_count
        # A styled cell is not plain: that row is left to DataTable.
        table.update_cell_at((0, 1), Text("styled", style="bold red"))
        assert table._plain_row(table.ordered_rows[0].key, 0, base, 0, 0) is None


@async_test
async def test_plain_lines_draw_as_datatable_draws_them_scrolled_and_after_a_theme_change(paths):
    async with layer_table(paths) as (pilot, table):
        width = table.size.width
        mine = functools.partial(ValueCachedTable._render_line, table)
        theirs = functools.partial(DataTable._render_line, table)
        datatable_cells = functools.partial(DataTable._render_cell, table)
        datatable_rows = functools.partial(DataTable._render_line_in_row, table)
        datatable_styles = functools.partial(DataTable.get_component_styles, table)
        base = Style(color="#dddddd", bgcolor="#202020")
        checked = 0
        for theme in ("textual-dark", "textual-light"):
            pilot.app.theme = theme
            await pilot.pause()
            table.move_cursor(row=1)
            table.hover_coordinate = Coordinate(2, 0)
            table._show_hover_cursor = True
            for x1 in (0, 3, 40):
                for y in range(table.header_height, table.header_height + table.row_count):
                    table._in_frame = True  # as inside render_lines: styles kept across frames
                    try:
                        drawn_by_mine = mine(y, x1, x1 + width, base)
                    finally:
                        table._in_frame, table._frame_layout = False, None
                    DataTable._clear_caches(table)  # DataTable draws afresh, all by itself
                    table._render_cell = datatable_cells
                    table._render_line_in_row = datatable_rows
                    table.get_component_styles = datatable_styles
                    try:
                        expected = theirs(y, x1, x1 + width, base)
                    finally:
                        del table._render_cell, table._render_line_in_row
                        del table.get_component_styles
                        DataTable._clear_caches(table)
                    assert drawn_by_mine.cell_length == expected.cell_length == width
                    assert characters([drawn_by_mine]) == characters([expected]), (theme, x1, y)
                    checked += 1
        assert checked == 2 * 3 * table.row_count
