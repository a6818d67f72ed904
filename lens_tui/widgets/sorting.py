"""Sortable tables: one sort state, one pair of keys and one header marker for every table view.

k9s, lazygit and harlequin users expect to sort any table by any column.
The Samples, Compare, Matrix and Design views all sort the same way:

- ``o`` sorts by the next column, ``O`` reverses the order, and clicking a
  header sorts by that column (clicking it again reverses);
- the sorted column's header carries ``▲`` (ascending) or ``▼`` (descending);
- identifiers (a layer, an index) sort ascending when first chosen, figures
  largest first, as ``lens samples --sort`` does;
- rows are ordered by :func:`core.ordering.sort_order` (numbers by value,
  NaN and ``None`` last in both directions, ties by the rows' natural order),
  and the view keeps the selected row selected.

A view keeps a :class:`TableSort`, lists :data:`SORT_BINDINGS` in its own
``BINDINGS`` (help reads each view's own list) and mixes in
:class:`SortableView`, implementing :meth:`SortableView.resort`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from core.errors import LensError
from core.ordering import sort_order

ASCENDING = "▲"
DESCENDING = "▼"

_SORT = Binding.Group("sort", compact=True)
#: The sort keys, the same in every table view (listed in each view's BINDINGS).
SORT_BINDINGS = [
    Binding("o", "sort(1)", "sort", group=_SORT, tooltip="Sort the table by the next column"),
    Binding("O", "reverse_sort", "reverse", group=_SORT, tooltip="Reverse the table's order"),
]


@dataclass
class TableSort:
    """Which column a table is sorted by, and in which direction.

    ``columns`` are the sortable column keys in the order ``o`` steps through;
    ``largest_first`` names those that sort descending when first chosen.
    """

    columns: tuple[str, ...]
    column: str
    descending: bool = False
    largest_first: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.column not in self.columns:
            raise LensError(f"unknown sort column {self.column!r}")

    def sort_by(self, column: str, descending: bool | None = None) -> None:
        """Sort by ``column``; without a direction, the column's own first direction."""
        if column not in self.columns:
            raise LensError(f"unknown sort column {column!r} (use {', '.join(self.columns)})")
        self.column = column
        self.descending = column in self.largest_first if descending is None else descending

    def step(self, step: int = 1) -> None:
        """``o``: the next sortable column (wrapping around), in its first direction."""
        index = self.columns.index(self.column) if self.column in self.columns else -1
        self.sort_by(self.columns[(index + step) % len(self.columns)])

    def reverse(self) -> None:
        """``O``: the same column, the other way round."""
        self.descending = not self.descending

    def click(self, column: str) -> bool:
        """A header was clicked: sort by it, or reverse if it is the sort column already.

        Returns whether the order changed (a column that cannot be sorted is ignored).
        """
        if column not in self.columns:
            return False
        if column == self.column:
            self.reverse()
        else:
            self.sort_by(column)
        return True

    def marker(self, column: str) -> str:
        """``▲`` / ``▼`` for the sort column, nothing for the others."""
        if column != self.column:
            return ""
        return DESCENDING if self.descending else ASCENDING

    def label(self, column: str, header: str, justify: str = "left") -> Text:
        """A header as shown: its text, with the marker if it is the sort column."""
        marker = self.marker(column)
        return Text(f"{header} {marker}" if marker else header, justify=justify)  # type: ignore[arg-type]

    def order(self, keys: Sequence[float | None] | np.ndarray) -> np.ndarray:
        """Row indexes in this order, given each row's value in the sort column."""
        return sort_order(keys, self.descending)


def column_key(event: DataTable.HeaderSelected) -> str:
    """The key of the clicked column, as the views name their columns."""
    return str(event.column_key.value)


class SortableView:
    """Mixin for a view with sortable tables (list it before the widget class).

    It turns ``o``, ``O`` and header clicks into changes of ``self.sorting``
    and asks the view to :meth:`resort`; the view orders its rows with
    ``self.sorting.order`` and labels its headers with ``self.sorting.label``.
    """

    sorting: TableSort

    def resort(self) -> None:
        """Order the rows anew for ``self.sorting`` and relabel the headers; keep the selection."""
        raise NotImplementedError

    def sortable_column(self, event: DataTable.HeaderSelected) -> str:
        """The sort column a header click asks for (a view may map its column keys)."""
        return column_key(event)

    def action_sort(self, step: int) -> None:
        self.sorting.step(step)
        self.resort()

    def action_reverse_sort(self) -> None:
        self.sorting.reverse()
        self.resort()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if self.sorting.click(self.sortable_column(event)):
            self.resort()
