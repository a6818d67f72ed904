"""A DataTable that re-renders only the cells whose text changed.

``DataTable`` keys its cell render cache on a counter that any update bumps,
so changing r (which alters 3 of the 14 per-layer columns) re-rendered every
visible cell and every header, which dominated the cost of a keypress on
36-layer bundles.
This subclass adds a cache keyed by what a cell shows (its text and style)
and how it is drawn, so unchanged cells are reused across updates. It can
also relabel its headers in place (the sort marker ``▲``/``▼`` moves between
columns), which ``DataTable`` offers no way to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text, TextType
from textual._segment_tools import line_crop
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets._data_table import (
    CellDoesNotExist,
    CellType,
    ColumnKey,
    default_cell_formatter,
)
from textual.widgets.data_table import RowKey


class ValueCachedTable(DataTable):
    """``DataTable`` whose body cells are cached by content, not by update count.

    ``j`` / ``k`` move the cursor too, as in k9s, lazygit and vim.
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, *args, **kwargs) -> None:
        # A body cell's full style (row style, its place as mouse meta, cursor and hover),
        # by what it is made of: the same for every frame until the styles change.
        # Set first: DataTable.__init__ clears the caches.
        self._cell_styles: dict[tuple, Style] = {}
        self._known_components: dict[tuple, _KnownRichStyle] = {}
        super().__init__(*args, **kwargs)
        self._content_cache: LRUCache[tuple, list] = LRUCache(8192)
        self._in_frame = False  # inside render_lines: what is kept for a frame holds
        self._frame_rich_style: Style | None = None
        self._frame_layout: _RowLayout | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        # DataTable asks for the same component styles for every row it draws and
        # works out each one's rich style again (walking the widget's ancestors):
        # inside a frame they are looked up where they are kept (by pseudo-classes,
        # until the CSS changes); the widget's own rich style (asked for every line)
        # and the row layout are worked out once a frame.
        self._in_frame = True
        try:
            return super().render_lines(crop)
        finally:
            self._in_frame = False
            self._frame_rich_style = None
            self._frame_layout = None

    @property
    def rich_style(self) -> Style:
        if not self._in_frame:
            return super().rich_style
        if self._frame_rich_style is None:
            self._frame_rich_style = super().rich_style
        return self._frame_rich_style

    def get_component_styles(self, *names: str):
        if not self._in_frame:
            return super().get_component_styles(*names)
        # Kept across frames, by the table's pseudo-classes (focus, hover): working
        # out a component's rich style walks the widget's ancestors (~0.1 ms each).
        key = (names, self._pseudo_class_state)
        styles = self._known_components.get(key)
        if styles is None:
            styles = _KnownRichStyle(super().get_component_styles(*names))
            self._known_components[key] = styles
        return styles

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_styles()

    def notify_style_update(self) -> None:
        super().notify_style_update()  # a new theme or CSS: DataTable clears its caches
        self._forget_styles()

    def _forget_styles(self) -> None:
        """Drop every style worked out from the CSS (the theme or the CSS may have changed)."""
        self._cell_styles.clear()
        self._known_components.clear()

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """DataTable's line ``y`` cropped to ``x1``..``x2``; a plain row's built in one strip.

        ``DataTable`` builds a line's strip three times (joined, padded to the
        width, simplified) and keys it on the update counter; a plain row here
        is :meth:`_plain_row`'s runs, the scrollable part cropped as
        ``DataTable`` crops it, in one strip of exactly the widget's width.
        """
        layout = self._layout()
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        row = None
        if layout.plain:
            cursor, hover = self.cursor_coordinate.row, self.hover_coordinate.row
            row = self._plain_row(row_key, line_no, base_style, cursor, hover)
        if row is None:
            return super()._render_line(y, x1, x2, base_style)
        fixed, scrollable = row
        width = layout.width
        segments = [cell[0] for cell in fixed]
        shown = line_crop(
            [cell[0] for cell in scrollable], x1 + layout.fixed_width, x2, layout.row_width
        )
        segments += shown
        length = layout.fixed_width + sum(cell_len(segment.text) for segment in shown)
        strip = Strip(segments, length)
        return strip if length == width else strip.adjust_cell_length(width, base_style)

    def _layout(self) -> _RowLayout:
        """The frame's row layout (worked out once inside ``render_lines``)."""
        layout = self._frame_layout
        if layout is None:
            layout = self._row_layout()
            if self._in_frame:
                self._frame_layout = layout
        return layout

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ):
        """DataTable's drawing of a row's line; :meth:`_plain_row`'s for the rows it can draw."""
        row = self._plain_row(row_key, line_no, base_style, cursor_location.row, hover_location.row)
        if row is None:
            args = (row_key, line_no, base_style, cursor_location, hover_location)
            return super()._render_line_in_row(*args)
        return row

    def _plain_row(
        self, row_key: RowKey, line_no: int, base_style: Style, cursor_row: int, hover_row: int
    ) -> tuple[list[list[Segment]], list[list[Segment]]] | None:
        """A one-line body row of plain cells, drawn run by run; None for any other row.

        ``DataTable`` draws a row cell by cell, each through its cell cache
        (keyed by an update counter, so a new r misses every one) and works out
        every cell's style anew. This row is what it draws, built from
        :meth:`_plain_text` and styles kept across frames: one run per cell
        (the cell's style, with its position as mouse meta, the cursor's and
        hover's styles), the fixed columns again on their own, and the row's
        fill to the table's width. ``tests/lens_tui/test_table.py`` checks the
        two agree, character by character and style by style, on every row.
        """
        if line_no != 0 or row_key is self._header_row_key:
            return None
        layout = self._layout()
        if not layout.plain:
            return None
        row_index = self._row_locations.get(row_key)
        if row_index is None or self.rows[row_key].height != 1:
            return None
        data = self._data[row_key]
        plain_text, padding = self._plain_text, layout.padding
        texts = []
        for key, width in zip(layout.keys, layout.widths):
            text = plain_text(data.get(key), width, padding)
            if text is None:
                return None
            texts.append(text)
        cursor, hover = cursor_row == row_index, hover_row == row_index
        row_style = self._get_row_style(row_index, base_style)
        fixed_styles, styles, fill = self._row_styles(row_index, row_style, cursor, hover, layout)
        fixed_row = [[Segment(texts[i], style)] for i, style in enumerate(fixed_styles)]
        scrollable_row = [[Segment(text, style)] for text, style in zip(texts, styles)]
        scrollable_row.append([Segment(" " * layout.fill_width, fill)])
        return fixed_row, scrollable_row

    def _row_styles(
        self, row_index: int, row_style: Style, cursor: bool, hover: bool, layout: _RowLayout
    ) -> tuple[list[Style], list[Style], Style]:
        """A plain row's cell styles: its fixed cells', every cell's, and its fill's."""
        key = ("row", row_index, row_style, layout.fixed_base, cursor, hover, len(layout.keys))
        key += layout.state
        known = self._cell_styles.get(key)
        if known is None:
            style_of, state = self._body_cell_style, layout.state
            known = (
                [
                    style_of(row_index, i, layout.fixed_base, cursor, hover, state)
                    for i in range(layout.fixed_count)
                ],
                [
                    style_of(row_index, i, row_style, cursor, hover, state)
                    for i in range(len(layout.keys))
                ],
                self._fill_style(row_style, row_index, cursor, hover, state),
            )
            self._cell_styles[key] = known
        return known

    def _row_layout(self) -> _RowLayout:
        """What every body row of a frame shares: columns, widths, styles' inputs."""
        columns = self.ordered_columns
        widths = [column.get_render_width(self) for column in columns]
        fixed_count = min(self.fixed_columns, len(columns))
        fixed_base = self.get_component_styles("datatable--fixed").rich_style
        fixed_base += Style.from_meta({"fixed": True})
        table_width = sum(widths[fixed_count:]) + self._row_label_column_width
        width = self.size.width
        return _RowLayout(
            width=width,
            fixed_width=sum(widths[:fixed_count]),
            row_width=sum(widths) + max(0, width - table_width),
            plain=self.cursor_type == "row"
            and not (self._labelled_row_exists and self.show_row_labels),
            keys=[column.key for column in columns],
            widths=widths,
            padding=self.cell_padding,
            fixed_count=fixed_count,
            fixed_base=fixed_base,
            fill_width=max(0, width - table_width),
            state=self._style_state(),
        )

    def _style_state(self) -> tuple:
        """Everything but the cell's place, row style, cursor and hover that its style follows."""
        return (
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
            self.cursor_foreground_priority,
            self.cursor_background_priority,
            self.fixed_rows,
            self.fixed_columns,
        )

    @staticmethod
    def _plain_text(cell: object, width: int, padding: int) -> str | None:
        """A plain one-line cell's characters in its column (padding, justified text); else None."""
        if not isinstance(cell, Text) or cell.spans or cell.style or "\n" in cell.plain:
            return None
        plain = cell.plain
        inner = width - 2 * padding
        length = cell_len(plain)
        if inner < 0 or length > inner:
            return None
        if cell.justify == "right":
            text = " " * (inner - length) + plain
        elif cell.justify in (None, "default", "left"):
            text = plain + " " * (inner - length)
        else:
            return None
        pad = " " * padding
        return pad + text + pad

    def _body_cell_style(
        self,
        row_index: int,
        column_index: int,
        base: Style,
        cursor: bool,
        hover: bool,
        state: tuple | None = None,
    ) -> Style:
        """The style ``DataTable._render_cell`` gives a plain body cell, worked out once.

        ``state`` is what else it depends on (:meth:`_style_state`), passed in
        when a whole row asks.
        """
        state = self._style_state() if state is None else state
        key = (row_index, column_index, base, cursor, hover, state)
        style = self._cell_styles.get(key)
        if style is None:
            component_style, post_style = self._get_styles_to_render_cell(
                False,
                False,
                row_index < self.fixed_rows or column_index < self.fixed_columns,
                hover,
                cursor,
                self.show_cursor,
                self._show_hover_cursor,
                self.cursor_foreground_priority == "css",
                self.cursor_background_priority == "css",
            )
            style = base + Style.from_meta({"row": row_index, "column": column_index})
            style = style + component_style
            if post_style:
                style = style + post_style
            if len(self._cell_styles) > 65_536:  # a bound, far above any table's cells
                self._cell_styles.clear()
            self._cell_styles[key] = style
        return style

    def _fill_style(
        self, row_style: Style, row_index: int, cursor: bool, hover: bool, state: tuple
    ) -> Style:
        """The style of the row's fill right of the last column (``cursor_type`` "row")."""
        key = ("fill", row_style, row_index, cursor, hover, state)
        style = self._cell_styles.get(key)
        if style is None:
            extend_style, _ = self._get_styles_to_render_cell(
                False,
                False,
                False,
                hover,
                cursor,
                self.show_cursor,
                self._show_hover_cursor,
                False,
                False,
            )
            style = row_style + extend_style
            style += Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
            self._cell_styles[key] = style
        return style

    def update_cells_at(self, cells: Iterable[tuple[Coordinate, CellType]]) -> None:
        """``update_cell_at`` for many cells with one refresh (DataTable refreshes per cell).

        A new r changes 3 columns of every layer: 108 refreshes at 36 layers, each
        working out the table's region on screen, for one repaint.
        """
        updated = False
        for coordinate, value in cells:
            if not self.is_valid_coordinate(coordinate):
                raise CellDoesNotExist(f"Coordinate {coordinate!r} is invalid.")
            row_key, column_key = self.coordinate_to_cell_key(coordinate)
            self._data[row_key][column_key] = value
            updated = True
        if updated:  # what DataTable.update_cell does after setting one cell
            self._update_count += 1
            self.refresh()

    def set_column_labels(self, labels: dict[str, TextType]) -> None:
        """Relabel columns by key, refitting each column's width to its new header and cells."""
        console = self.app.console
        changed = False
        for key, label in labels.items():
            column = self.columns.get(ColumnKey(key))
            if column is None:
                continue
            text = Text(label) if isinstance(label, str) else label
            if column.label == text:
                continue
            column.label = text
            widths = [console.measure(text).maximum]
            widths += [
                console.measure(default_cell_formatter(cell, wrap=False)).maximum
                for cell in self.get_column(key)
            ]
            column.content_width = max(widths)
            changed = True
        if changed:
            # What DataTable.add_column does after changing a column: re-measure, re-render.
            self._require_update_dimensions = True
            self._update_count += 1
            self._clear_caches()
            self.refresh()

    def order_rows(self, keys: list[str]) -> None:
        """Show the rows in this order of their keys, as they are (no cell is measured anew).

        A new sort reorders what is shown: rebuilding the rows would measure every
        cell again, and ``DataTable.sort`` sees only the cells' values, not the keys.
        """
        by_value = {key.value: key for key in self.rows}
        if sorted(by_value) != sorted(keys):
            raise ValueError("order_rows needs every row's key exactly once")
        self._row_locations = TwoWayDict({by_value[key]: i for i, key in enumerate(keys)})
        self._update_count += 1  # what DataTable.sort does after reordering
        self.refresh()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Measure new rows as ``DataTable`` does, and redraw if a column's width changed.

        ``DataTable`` measures rows added since the last idle only then, after it
        may have drawn them at the old widths (a table rebuilt with new columns: at
        their headers' widths), and its line cache is not keyed by the widths, so a
        table whose size stayed the same kept showing cells cut short.
        """
        before = [column.get_render_width(self) for column in self.ordered_columns]
        super()._update_dimensions(new_rows)
        if [column.get_render_width(self) for column in self.ordered_columns] != before:
            self._update_count += 1
            self._clear_caches()
            self.refresh()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ):
        if column_index < 0:  # row labels: this app's tables have none
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell: object = None
        row_height = 0
        if row_index < 0:  # a header: re-rendered on every update too, though it rarely changes
            label = self.ordered_columns[column_index].label
            shown = ("header", label.markup, label.justify, self.header_height)
        else:
            cell = self.get_cell_at(Coordinate(row_index, column_index))
            row_height = self.rows[self._row_locations.get_key(row_index)].height
            shown = (
                (cell.plain, str(cell.style), cell.justify) if isinstance(cell, Text) else str(cell)
            )
        key = (
            row_index,
            column_index,
            shown,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
            row_height,
        )
        lines = self._content_cache.get(key)
        if lines is None:
            if row_index >= 0:
                lines = self._plain_cell(
                    cell, row_height, row_index, column_index, base_style, width, cursor, hover
                )
            if lines is None:
                lines = super()._render_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
            self._content_cache[key] = lines
        return lines

    def _plain_cell(
        self,
        cell: object,
        row_height: int,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> list[list[Segment]] | None:
        """A one-line body cell of unstyled text, drawn without rich's layout; None otherwise.

        What ``DataTable._render_cell`` draws for such a cell is one run of
        characters in one style: the padding, the text justified in the
        column, and the padding again, all in the cell's style (the base
        style with the cell's position as mouse meta, the cursor's and hover's
        styles). Drawn by rich that is ~0.15 ms a cell, and a new r changes
        five columns of every row on screen. ``tests/lens_tui/test_table.py``
        checks the two agree cell by cell. ``cell`` and ``row_height`` are the
        body cell at (``row_index``, ``column_index``) and its row's height, as
        ``_render_cell`` looked them up for its cache key.
        """
        if row_height != 1:
            return None
        text = self._plain_text(cell, width, self.cell_padding)
        if text is None:
            return None
        return [
            [
                Segment(
                    text, self._body_cell_style(row_index, column_index, base_style, cursor, hover)
                )
            ]
        ]


@dataclass(frozen=True)
class _RowLayout:
    """What the body rows of one frame share (see ``ValueCachedTable._row_layout``)."""

    plain: bool  # rows may be drawn by ``_plain_row`` (row cursor, no row labels)
    width: int  # the widget's
    fixed_width: int  # the fixed columns'
    row_width: int  # a whole row's, fill included, before cropping
    keys: list[ColumnKey]
    widths: list[int]
    padding: int
    fixed_count: int
    fixed_base: Style
    fill_width: int
    state: tuple


class _KnownRichStyle:
    """A component's styles with its rich style worked out once (for one frame)."""

    __slots__ = ("_styles", "rich_style")

    def __init__(self, styles) -> None:
        self._styles = styles
        self.rich_style = styles.rich_style

    def __getattr__(self, name: str):
        return getattr(self._styles, name)
