"""Sortable tables: one sort state, one pair of keys and one header marker for every table view.

k9s, lazygit and harlequin users expect to sort any table by any column.
The Samples, Compare, Matrix, Design and Predict views all sort the same way:

- ``o`` sorts by the next column, ``O`` reverses the order, and clicking a
  header sorts by that column (clicking it again reverses);
- the sorted column's header carries ``▲`` (ascending) or ``▼`` (descending);
- identifiers (a layer, an index) sort ascending when first chosen, figures
  largest first, as ``lens samples --sort`` does;
- rows are ordered by :func:`core.ordering.sort_order` (numbers by value,
  NaN and ``None`` last in both directions, ties by the rows' natural order),
  and the view keeps the selected row selected.

A view keeps a :class:`TableSort` (one per table whose rows have an order of
their own: Predict's two tables), lists :data:`SORT_BINDINGS` in its own
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

    def over(
        self, columns: tuple[str, ...], default: str, largest_first: frozenset[str]
    ) -> TableSort:
        """This sort for a table whose columns changed (other bundles, targets or groups shown).

        The sort column and its direction stay while the column is still there;
        otherwise the table goes back to ``default`` in its first direction.
        """
        if self.column in columns:
            return TableSort(columns, self.column, self.descending, largest_first)
        fresh = TableSort(columns, default, largest_first=largest_first)
        fresh.sort_by(default)
        return fresh

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


def text_keys(names: Sequence[str]) -> list[float | None]:
    """Sort keys of a column of names: each name's rank in case-insensitive alphabetical order.

    :meth:`TableSort.order` sorts numbers; a rank makes a name column one too
    (equal names share a rank, so ties keep the rows' natural order).
    """
    ranks = {name: float(i) for i, name in enumerate(sorted({n.casefold() for n in names}))}
    return [ranks[name.casefold()] for name in names]


def column_key(event: DataTable.HeaderSelected) -> str:
    """The key of the clicked column, as the views name their columns."""
    return str(event.column_key.value)


class SortableView:
    """Mixin for a view with sortable tables (list it before the widget class).

    It turns ``o``, ``O`` and header clicks into changes of a :class:`TableSort`
    (:meth:`table_sort`: ``self.sorting`` unless the view says otherwise) and
    asks the view to :meth:`resort`; the view orders its rows with the sort's
    ``order`` and labels its headers with its ``label``. While there is no
    table to sort, ``o`` and ``O`` are off and left out of the footer.
    """

    sorting: TableSort

    def resort(self) -> None:
        """Order the rows anew for the sorts and relabel the headers; keep the selection."""
        raise NotImplementedError

    def table_sort(self, table: DataTable | None = None) -> TableSort | None:
        """The sort that a click on ``table``'s header changes, or (``table`` None) ``o`` / ``O``.

        One sort serves every table of a view whose tables share one order
        (Matrix); a view whose tables each have their own (Predict) returns
        the clicked one's, or for a key the one the user is looking at, and
        None while no table is shown.
        """
        return self.sorting

    def sortable_column(self, event: DataTable.HeaderSelected) -> str:
        """The sort column a header click asks for (a view may map its column keys)."""
        return column_key(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``o`` / ``O`` only while there is a table to sort (else hidden from the footer)."""
        if action in ("sort", "reverse_sort") and self.table_sort() is None:
            return False
        return super().check_action(action, parameters)  # type: ignore[misc]

    def action_sort(self, step: int) -> None:
        sort = self.table_sort()
        if sort is not None:
            sort.step(step)
            self.resort()

    def action_reverse_sort(self) -> None:
        sort = self.table_sort()
        if sort is not None:
            sort.reverse()
            self.resort()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        sort = self.table_sort(event.data_table)
        if sort is not None and sort.click(self.sortable_column(event)):
            self.resort()
