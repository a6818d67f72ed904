"""Scrollbars drawn with whole cells of colour only, never with block glyphs.

Textual draws a thumb's fractional ends with ``▁▂…▇`` / ``▉▊…▏``. Beside a
panel's border, in a terminal with a plain background, those read as stray
glyphs outside the panel (``▅▅`` next to the sparklines), so the app's
scrollbars round their thumbs to whole cells instead.
"""

from __future__ import annotations

from textual.scrollbar import ScrollBar, ScrollBarRender


class CellScrollBarRender(ScrollBarRender):
    """A thumb of whole background-coloured cells (each partial glyph replaced by a space)."""

    VERTICAL_BARS = [" "] * 8
    HORIZONTAL_BARS = [" "] * 8


def use_cell_scrollbars() -> None:
    """Make every scrollbar of this process draw whole cells (Textual's renderer is class-wide)."""
    ScrollBar.renderer = CellScrollBarRender
