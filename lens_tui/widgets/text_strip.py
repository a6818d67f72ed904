"""A one-line rich ``Text`` as a Textual ``Strip``, without rich's layout: for the line API.

Widgets that repaint on every key (the expert chart, the sparklines) draw
line by line and keep each line's strip until its text changes; this builds
a strip in a fraction of what ``Text.render`` costs.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style as RichStyle
from rich.text import Text
from textual.strip import Strip


def row_strip(row: Text, base: RichStyle) -> Strip:
    """``row`` as a strip over ``base`` (the widget's colours): what ``row.render`` gives, faster.

    A chart row has a few spans (axis, bars, boundary), later ones over earlier
    ones as rich applies them; one segment per run between span edges. rich's
    own render of a row took three times as long (a third of a figure's cost).
    Styles given by name (``Text.append(..., style="bold")``) are parsed as rich
    parses them (its parse is cached).
    """
    plain, spans = row.plain, row.spans
    if row.style:
        base = base + _style(row.style)
    edges = sorted({0, len(plain), *(s.start for s in spans), *(s.end for s in spans)})
    segments = []
    for start, end in zip(edges, edges[1:]):
        if end > len(plain):
            break
        style = base
        for span in spans:
            if span.start <= start and end <= span.end:
                style = style + _style(span.style)
        segments.append(Segment(plain[start:end], style))
    return Strip(segments, row.cell_len)


def _style(style: str | RichStyle) -> RichStyle:
    return RichStyle.parse(style) if isinstance(style, str) else style
