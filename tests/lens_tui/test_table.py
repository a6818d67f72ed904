"""``ValueCachedTable``: its plain-cell drawing equals ``DataTable``'s, character by character."""

from __future__ import annotations

import pytest
from rich.style import Style
from rich.text import Text
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


@async_test
async def test_plain_cells_draw_as_datatable_draws_them(paths):
    app = build_app(paths)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        table = app.query_one("#layer-table", ValueCachedTable)
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
