"""One layer's expert distributions as a mirrored bar chart, laid out cell by cell.

The Compare view draws a new chart on every key that changes the layer or r.
plotext took ~8 ms of CPU per figure at 160×48 (its cell matrix, transposes
and element inserts) and its rows cost as much again to turn into strips, so
the chart was drawn a frame after the numbers. Here the chart is computed
straight from the two distributions with numpy, one ``rich.text.Text`` per
screen row, in a fraction of a millisecond, and needs no Textual app: the
tests lay it out at any size.

Rows, top to bottom (``height`` in all)::

    title
    (a blank row when the height leaves one over)
    ▼ row: the experts A's top-r mask keeps (none when sorted: the boundary says it)
    U rows of P_l(A) bars, up from the zero line
    the zero line
    U rows of P_l(B) bars, down from it
    ▲ row: the experts B's top-r mask keeps
    x axis with tick marks
    tick labels
    x label

Each bar row holds two half-cells (█ both, ▄ the lower one at the top of an
up bar, ▀ the upper one at the bottom of a down bar), so a bar of value p is
round(p / top × 2U) half-cells high, top being the largest of both
distributions: A and B share one scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.style import Style
from rich.text import Span, Text

from core.engine import LayerDistribution
from lens_tui.widgets.colors import A_HEX, B_HEX, GRID_HEX

KEPT_A_MARK = "▼"
KEPT_B_MARK = "▲"
#: Above this many experts the chart is sorted by mass (see ``sorts_experts``).
SORT_ABOVE = 128
FULL, LOWER_HALF, UPPER_HALF = "█", "▄", "▀"
BOUNDARY = "│"
#: Rows that are not bars: title, two marker rows, zero line, axis, tick labels, x label.
FIXED_ROWS = 7
#: A bar's width as a share of its expert's slot, when a slot has 2 columns or more.
BAR_SHARE = 0.7
#: Rows given up first when the chart is shorter than its full layout, in this order.
DROPPED_FIRST = ("xlabel", "axis", "title", "ticks", "mark_b", "mark_a")

A_STYLE = Style(color=A_HEX)
B_STYLE = Style(color=B_HEX)
GRID_STYLE = Style(color=GRID_HEX)


def sorts_experts(count: int) -> bool:
    """Whether a layer of ``count`` experts is drawn sorted by P_l(A) rather than by number.

    Up to 128 experts, one stem per expert still reads in 80 columns; at 384
    (DeepSeek-V3, Kimi-K2) several experts share a column and the chart by
    number is a solid block, while sorted by mass it shows the distribution's
    shape, A's top-r boundary and where B's kept experts fall in A's ranking.
    """
    return count > SORT_ABOVE


def integer_ticks(count: int, room: int) -> list[int]:
    """Whole-number ticks 0 … count-1 at a round spacing (1, 2, 5, 10, …), one per ≥ 6 columns.

    Experts are numbered: a tick at 7.8 names no expert.
    """
    wanted = max(1, room // 6)
    spacing = next(
        step
        for step in (m * 10**p for p in range(8) for m in (1, 2, 5))
        if math.ceil(count / step) <= wanted
    )
    ticks = list(range(0, count, spacing))
    if count - 1 - ticks[-1] >= spacing / 2:  # the last expert, unless it would crowd a tick
        ticks.append(count - 1)
    return ticks


@dataclass(frozen=True)
class Columns:
    """Which experts (in drawing order) each column of the plot area shows.

    Column ``c`` shows experts ``start[c]`` … ``stop[c] - 1``; both are -1 for a
    column that shows none (the gap between wide bars, the boundary line).
    """

    start: np.ndarray
    stop: np.ndarray
    #: The column of the line between experts ``split - 1`` and ``split``, if asked for.
    boundary: int | None


def expert_columns(count: int, columns: int, split: int | None = None) -> Columns:
    """Lay ``count`` experts out over ``columns`` columns, with a boundary before ``split``.

    With 2 columns or more per expert each gets a bar ``BAR_SHARE`` of its
    slot wide (at least one column, and at least one column of gap), centred
    in the slot, as plotext's bars of width 0.7 were. With fewer, the experts
    are spread evenly: one or two columns each, or, with more experts than
    columns, several experts per column (the chart shows their maximum). A
    boundary gets a column of its own, so it hides no bar: in a gap, or, when
    the experts are packed, between the two groups, each spread over its share
    of the columns (so no column holds experts of both sides).
    """
    start = np.full(columns, -1, dtype=np.int64)
    stop = np.full(columns, -1, dtype=np.int64)
    at = split if split is not None and 0 < split < count else None
    slot = columns / count
    if slot >= 2:
        width = max(1, min(math.floor(slot) - 1, round(BAR_SHARE * slot)))
        left = np.floor(np.arange(count) * slot + (slot - width) / 2 + 0.5).astype(np.int64)
        cols = (left[:, None] + np.arange(width)).ravel()
        experts = np.repeat(np.arange(count), width)
        start[cols], stop[cols] = experts, experts + 1
        # The next bar starts ≥ floor(slot) ≥ width + 1 columns on: this column is a gap.
        return Columns(start, stop, None if at is None else int(left[at - 1] + width))
    if at is None or columns < 3:
        _spread(start, stop, 0, columns, 0, count)
        return Columns(start, stop, None)
    data = columns - 1
    first = min(max(1, round(data * at / count)), data - 1)
    _spread(start, stop, 0, first, 0, at)
    _spread(start, stop, first + 1, columns, at, count)
    return Columns(start, stop, first)


def _spread(start: np.ndarray, stop: np.ndarray, col0: int, col1: int, e0: int, e1: int) -> None:
    """Experts ``e0`` … ``e1 - 1`` evenly over columns ``col0`` … ``col1 - 1``, in order."""
    shown, experts = col1 - col0, e1 - e0
    j = np.arange(shown)
    first = e0 + (j * experts) // shown
    start[col0:col1] = first
    stop[col0:col1] = np.maximum(first + 1, e0 + ((j + 1) * experts) // shown)


def column_maxima(values: np.ndarray, layout: Columns) -> np.ndarray:
    """Each column's largest value among its experts (0 for a column of none).

    ``reduceat`` ends each column's run at the next column's first expert:
    the layout's columns are contiguous and in order, so that is its ``stop``
    (a column repeating the expert before it takes that expert alone).
    """
    out = np.zeros(len(layout.start), dtype=values.dtype)
    shown = layout.start >= 0
    if shown.any():
        out[shown] = np.maximum.reduceat(values, layout.start[shown])
    return out


def centre_columns(layout: Columns) -> np.ndarray:
    """Whether each column is the middle one of the columns that show its experts.

    An expert drawn over several columns (a wide bar) gets one kept mark and
    one tick, in its middle; a column of several experts is their only one.
    """
    centres = np.zeros(len(layout.start), dtype=bool)
    shown = np.flatnonzero(layout.start >= 0)
    if len(shown):
        _, first, width = np.unique(layout.start[shown], return_index=True, return_counts=True)
        centres[shown[first + (width - 1) // 2]] = True
    return centres


def half_cells(values: np.ndarray, top: float, halves: int) -> np.ndarray:
    """Bar heights in half-cells: value / top of ``halves``, rounded half up."""
    return np.floor(values / top * halves + 0.5).astype(np.int64)


def chart_rows(
    dist: LayerDistribution, width: int, height: int, title: str | None = None
) -> list[Text]:
    """The chart of ``dist`` in ``width`` × ``height`` cells: exactly ``height`` rows.

    ``title`` replaces the standard title (the Samples view names its sample).
    Every row is at most ``width`` cells; rows carry colours only (A, B, grid)
    and take their background from whatever draws them.
    """
    if height <= 0:
        return []
    if width <= 0:
        return [Text() for _ in range(height)]
    count = len(dist.prob_a)
    sort = sorts_experts(count)
    order = np.argsort(-dist.prob_a, kind="stable") if sort else np.arange(count)
    prob_a, prob_b = dist.prob_a[order], dist.prob_b[order]
    kept_a, kept_b = dist.kept_a[order], dist.kept_b[order]
    top = float(max(np.max(prob_a), np.max(prob_b), 1e-12))
    up = max(1, (height - FIXED_ROWS) // 2)

    labels = y_labels(top, up)
    margin = max(len(label) for label in labels.values()) + 1  # labels, then the axis
    columns = max(1, width - margin)
    layout = expert_columns(count, columns, dist.r if sort else None)
    heights_a = half_cells(column_maxima(prob_a, layout), top, 2 * up)
    heights_b = half_cells(column_maxima(prob_b, layout), top, 2 * up)
    centres = centre_columns(layout)  # one mark per bar, over its middle
    marks_a = (column_maxima(kept_a.astype(np.uint8), layout) > 0) & centres
    marks_b = (column_maxima(kept_b.astype(np.uint8), layout) > 0) & centres
    boundary = layout.boundary

    def plot_row(cells: np.ndarray, style: Style, label: str = "", axis: str = "│") -> Text:
        """A row of the plot area: the tick label, the axis, then the cells in ``style``."""
        spans = [Span(margin - 1, margin, GRID_STYLE), Span(margin, margin + columns, style)]
        if boundary is not None:
            cells[boundary] = "┼" if cells[boundary] == "─" else BOUNDARY
            spans.append(Span(margin + boundary, margin + boundary + 1, GRID_STYLE))
        return Text(label.rjust(margin - 1) + axis + "".join(cells.tolist()), spans=spans)

    blank = np.full(columns, " ", dtype="<U1")
    rows: list[tuple[str, Text]] = [("title", centred(title or chart_title(dist, sort), width))]
    if height - FIXED_ROWS - 2 * up > 0:  # an odd row over: under the title
        rows.append(("spacer", Text()))
    mark_a = blank if sort else np.where(marks_a, KEPT_A_MARK, " ")
    rows.append(("mark_a", plot_row(mark_a, A_STYLE)))
    for k in range(up, 0, -1):
        cells = np.where(
            heights_a >= 2 * k, FULL, np.where(heights_a == 2 * k - 1, LOWER_HALF, " ")
        )
        label = labels.get(k, "")
        rows.append(("bar", plot_row(cells, A_STYLE, label, "┤" if label else "│")))
    zero = np.full(columns, "─", dtype="<U1")
    rows.append(("zero", plot_row(zero, GRID_STYLE, labels[0], "┼")))
    for k in range(1, up + 1):
        cells = np.where(
            heights_b >= 2 * k, FULL, np.where(heights_b == 2 * k - 1, UPPER_HALF, " ")
        )
        label = labels.get(k, "")
        rows.append(("bar", plot_row(cells, B_STYLE, label, "┤" if label else "│")))
    rows.append(("mark_b", plot_row(np.where(marks_b, KEPT_B_MARK, " "), B_STYLE)))
    axis, ticks = x_axis(layout, centres, count, margin, width)
    rows += [("axis", axis), ("ticks", ticks)]
    xlabel = "rank by P_l(A) (not expert number)" if sort else "expert"
    rows.append(("xlabel", Text(" " * (margin + max(0, (columns - len(xlabel)) // 2)) + xlabel)))

    for kind in DROPPED_FIRST:
        if len(rows) <= height:
            break
        rows = [row for row in rows if row[0] != kind]
    texts = [text for _, text in rows[:height]]
    texts += [Text() for _ in range(height - len(texts))]
    for text in texts:
        text.truncate(width, overflow="crop")
    return texts


def chart_title(dist: LayerDistribution, sort: bool) -> str:
    count = len(dist.prob_a)
    if sort:
        return f"layer {dist.layer}: {count} experts sorted by P_l(A); left of | = A's top {dist.r}"
    return f"layer {dist.layer}: P_l(A) up, P_l(B) down; marks: kept at r = {dist.r}"


def y_labels(top: float, up: int) -> dict[int, str]:
    """Tick labels by bar row (1 = next to the zero line, 0 = the zero line): magnitudes.

    The top row and the one half way up are labelled with the value at their
    upper edge (k/U of ``top``), the same on both sides of the zero line.
    """
    decimals = 3 if top >= 0.01 else 4
    rows = sorted({0, up, (up + 1) // 2})
    return {k: f"{k * top / up:.{decimals}f}" for k in rows}


def centred(text: str, width: int) -> Text:
    """``text`` centred in ``width`` cells, cut short with … if it is wider."""
    line = Text(text)
    line.truncate(width, overflow="ellipsis")
    line.pad_left(max(0, (width - line.cell_len) // 2))
    return line


def x_axis(
    layout: Columns, centres: np.ndarray, count: int, margin: int, width: int
) -> tuple[Text, Text]:
    """The x axis (└──┬──) and its integer tick labels, each centred under its expert's columns.

    A label that would touch the one before it is left out, with its tick mark.
    """
    columns = len(layout.start)
    axis = ["─"] * columns
    labels = [" "] * width
    end = -1  # one past the last label placed
    for x in integer_ticks(count, columns):
        centre = int(np.flatnonzero(centres & (layout.start <= x) & (x < layout.stop))[0])
        label = str(x)
        left = min(max(margin + centre - (len(label) - 1) // 2, 0), width - len(label))
        if left <= end or left < 0:
            continue
        axis[centre] = "┬"
        labels[left : left + len(label)] = label
        end = left + len(label)
    axis_text = Text(" " * (margin - 1) + "└" + "".join(axis), style=GRID_STYLE)
    return axis_text, Text("".join(labels).rstrip())
