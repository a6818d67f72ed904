"""The expert chart's layout, read back from its rows and checked against hand-made numbers.

Expectations come from the distributions by hand or by a plain loop here
(which experts a column shows, the half-cells of a bar), never from the
chart module's own helpers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text

from core.engine import LayerDistribution
from lens_tui.widgets.colors import A_HEX, B_HEX
from lens_tui.widgets.expert_chart import KEPT_A_MARK, KEPT_B_MARK, chart_rows
from lens_tui.widgets.text_strip import row_strip

CONSOLE = Console(width=400)
HALF_CELLS = {"█": 2, "▄": 1, "▀": 1, " ": 0}


def make(prob_a, prob_b, r: int, layer: int = 3) -> LayerDistribution:
    """A layer with each side's top-r mask (ties to the lower expert number)."""
    prob_a, prob_b = np.asarray(prob_a, float), np.asarray(prob_b, float)

    def top(p):
        kept = np.zeros(len(p), bool)
        kept[sorted(range(len(p)), key=lambda e: (-p[e], e))[:r]] = True
        return kept

    return LayerDistribution(
        layer=layer, r=r, prob_a=prob_a, prob_b=prob_b, kept_a=top(prob_a), kept_b=top(prob_b)
    )


class Chart:
    """A chart's rows, split into their parts by the characters the chart draws."""

    def __init__(self, rows: list[Text]):
        self.rows = rows
        self.plain = [row.plain for row in rows]
        self.zero = next(i for i, line in enumerate(self.plain) if "┼─" in line)
        self.margin = self.plain[self.zero].index("┼") + 1
        self.axis = next(i for i, line in enumerate(self.plain) if "└" in line)
        # ▼ row, U rows up, the zero line, U rows down, ▲ row, then the x axis.
        self.mark_b = self.axis - 1
        self.up = self.mark_b - self.zero - 1
        self.mark_a = self.zero - self.up - 1
        self.columns = len(self.plain[self.zero]) - self.margin

    def cells(self, row: int) -> str:
        return self.plain[row][self.margin :].ljust(self.columns)

    def heights(self, side: str) -> list[int]:
        """Half-cells of each column's bar, read cell by cell away from the zero line."""
        rows = (
            range(self.zero - 1, self.mark_a, -1)
            if side == "a"
            else range(self.zero + 1, self.mark_b)
        )
        out = []
        for col in range(self.columns):
            out.append(sum(HALF_CELLS.get(self.cells(row)[col], 0) for row in rows))
        return out

    def colour(self, row: int, col: int) -> str | None:
        style = self.rows[row].get_style_at_offset(CONSOLE, self.margin + col)
        return style.color.triplet.hex if style.color and style.color.triplet else None

    def marks(self, row: int, mark: str) -> list[int]:
        return [col for col, char in enumerate(self.cells(row)) if char == mark]

    def boundary(self) -> int | None:
        found = [col for col, char in enumerate(self.cells(self.mark_b)) if char == "│"]
        return found[0] if found else None


def bars(heights_a: list[int], heights_b: list[int]) -> list[list[int]]:
    """Runs of columns with a bar on either side: one per expert when none is zero."""
    runs: list[list[int]] = []
    for col, (a, b) in enumerate(zip(heights_a, heights_b)):
        if a or b:
            if runs and runs[-1][-1] == col - 1:
                runs[-1].append(col)
            else:
                runs.append([col])
    return runs


def expected_half_cells(p: float, top: float, halves: int) -> int:
    return math.floor(p / top * halves + 0.5)


@pytest.mark.parametrize(("width", "height"), [(40, 15), (60, 19), (30, 11)])
def test_four_wide_bars_have_the_hand_computed_heights_colours_and_marks(width, height):
    dist = make([0.1, 0.4, 0.2, 0.3], [0.25, 0.05, 0.5, 0.2], r=2)
    chart = Chart(chart_rows(dist, width, height))
    up = (height - 7) // 2
    assert chart.up == up
    heights_a, heights_b = chart.heights("a"), chart.heights("b")
    runs = bars(heights_a, heights_b)
    assert len(runs) == 4
    slot = chart.columns / 4
    top = 0.5
    for expert, run in enumerate(runs):
        assert slot * expert <= run[0] and run[-1] < slot * (expert + 1)  # inside its slot
        assert {heights_a[c] for c in run} == {
            expected_half_cells(dist.prob_a[expert], top, 2 * up)
        }
        assert {heights_b[c] for c in run} == {
            expected_half_cells(dist.prob_b[expert], top, 2 * up)
        }
    assert len({len(run) for run in runs}) == 1  # one bar width for all
    assert len(runs[0]) == max(1, min(math.floor(slot) - 1, round(0.7 * slot)))
    # ▼ over A's kept experts 1 and 3, ▲ under B's kept 0 and 2: one each, over its bar.
    for row, mark, kept in (
        (chart.mark_a, KEPT_A_MARK, [1, 3]),
        (chart.mark_b, KEPT_B_MARK, [0, 2]),
    ):
        marked = chart.marks(row, mark)
        assert [next(e for e, run in enumerate(runs) if col in run) for col in marked] == kept
    # The x ticks 0 … 3 name the experts whose bars they stand under.
    marks = [col for col, char in enumerate(chart.plain[chart.axis][chart.margin :]) if char == "┬"]
    assert [token for token, _ in tick_labels(chart)] == ["0", "1", "2", "3"]
    assert marks == [run[(len(run) - 1) // 2] for run in runs]  # the middle of each bar
    # A's cells are A's colour, B's are B's.
    for row in range(chart.mark_a, chart.zero):
        for col, char in enumerate(chart.cells(row)):
            if char != " ":
                assert chart.colour(row, col) == A_HEX
    for row in range(chart.zero + 1, chart.mark_b + 1):
        for col, char in enumerate(chart.cells(row)):
            if char != " ":
                assert chart.colour(row, col) == B_HEX


def test_eight_experts_at_two_columns_each_are_one_column_bars_with_a_gap():
    dist = make(
        [0.05, 0.1, 0.15, 0.2, 0.1, 0.15, 0.05, 0.2],
        [0.2, 0.15, 0.1, 0.05, 0.2, 0.1, 0.15, 0.05],
        r=3,
    )
    margin = Chart(chart_rows(dist, 80, 13)).margin
    chart = Chart(chart_rows(dist, margin + 16, 13))
    assert chart.columns == 16
    heights_a, heights_b = chart.heights("a"), chart.heights("b")
    runs = bars(heights_a, heights_b)
    assert runs == [[2 * e] for e in range(8)] or runs == [[2 * e + 1] for e in range(8)]
    halves = 2 * chart.up
    for expert, [col] in enumerate(runs):
        assert heights_a[col] == expected_half_cells(dist.prob_a[expert], 0.2, halves)
        assert heights_b[col] == expected_half_cells(dist.prob_b[expert], 0.2, halves)


def test_the_bar_tops_are_half_blocks_and_a_full_scale_bar_fills_every_row():
    dist = make([0.5, 0.35, 0.1], [0.1, 0.375, 0.5], r=1)
    chart = Chart(chart_rows(dist, 40, 11))  # 2 rows a side: 4 half-cells
    assert chart.up == 2
    a_rows = [chart.cells(row) for row in range(chart.zero - 1, chart.mark_a, -1)]
    b_rows = [chart.cells(row) for row in range(chart.zero + 1, chart.mark_b)]
    centres = [run[len(run) // 2] for run in bars(chart.heights("a"), chart.heights("b"))]
    # A, from the zero line up: 0.5 → 4 half-cells, 0.35 → 2.8 → 3, 0.1 → 0.8 → 1.
    assert [[row[col] for row in a_rows] for col in centres] == [
        ["█", "█"],
        ["█", "▄"],
        ["▄", " "],
    ]
    # B, from the zero line down: 0.1 → 1, 0.375 → 3, 0.5 → 4.
    assert [[row[col] for row in b_rows] for col in centres] == [
        ["▀", " "],
        ["█", "▀"],
        ["█", "█"],
    ]


def naive_columns(ranks: int, columns: int) -> list[range]:
    """``ranks`` items spread evenly over ``columns`` columns (more items than columns)."""
    return [range(j * ranks // columns, (j + 1) * ranks // columns) for j in range(columns)]


def test_384_experts_in_91_columns_are_sorted_with_the_boundary_after_rank_r():
    rng = np.random.default_rng(7)
    experts, r = 384, 96
    dist = make(rng.dirichlet(np.ones(experts)), rng.dirichlet(np.ones(experts)), r=r, layer=5)
    margin = Chart(chart_rows(dist, 200, 19)).margin
    width = margin + 91
    rows = chart_rows(dist, width, 19)
    chart = Chart(rows)
    assert chart.columns == 91
    boundary = chart.boundary()
    assert boundary is not None and abs(boundary - 90 * r / experts) <= 1
    # Each column shows a run of ranks: A's top r left of the boundary, the rest right of it.
    order = sorted(range(experts), key=lambda e: (-dist.prob_a[e], e))
    groups = [list(g) for g in naive_columns(r, boundary)] + [
        [r + i for i in g] for g in naive_columns(experts - r, 90 - boundary)
    ]
    shown = [c for c in range(91) if c != boundary]
    top = max(dist.prob_a.max(), dist.prob_b.max())
    halves = 2 * chart.up
    heights_a, heights_b = chart.heights("a"), chart.heights("b")
    marked_b = set(chart.marks(chart.mark_b, KEPT_B_MARK))
    for col, ranks in zip(shown, groups, strict=True):
        members = [order[rank] for rank in ranks]
        assert heights_a[col] == expected_half_cells(max(dist.prob_a[members]), top, halves)
        assert heights_b[col] == expected_half_cells(max(dist.prob_b[members]), top, halves)
        assert (col in marked_b) == any(dist.kept_b[members])
    assert heights_a[boundary] == heights_b[boundary] == 0
    assert chart.marks(chart.mark_a, KEPT_A_MARK) == []  # sorted: the boundary says it
    assert heights_a[:boundary] == sorted(heights_a[:boundary], reverse=True)
    title = chart.plain[0]
    assert "layer 5" in title and f"top {r}" in title and "sorted by P_l(A)" in title
    assert chart.plain[-1].strip() == "rank by P_l(A) (not expert number)"


def test_a_boundary_between_wide_bars_sits_in_the_gap_after_bar_r():
    experts, r = 130, 40  # sorted (> 128) with room for 2+ columns each
    rng = np.random.default_rng(3)
    prob_a, prob_b = (1 + rng.random(experts), 1 + rng.random(experts))  # every bar visible
    dist = make(prob_a / prob_a.sum(), prob_b / prob_b.sum(), r=r)
    chart = Chart(chart_rows(dist, 300, 15))
    runs = bars(chart.heights("a"), chart.heights("b"))
    assert len(runs) == experts
    boundary = chart.boundary()
    assert runs[r - 1][-1] < boundary < runs[r][0]


def tick_labels(chart: Chart) -> list[tuple[str, range]]:
    """Each x tick label and the plot columns it covers."""
    line = chart.plain[chart.axis + 1]
    out, col = [], 0
    for token in line.split():
        start = line.index(token, col)
        out.append((token, range(start - chart.margin, start + len(token) - chart.margin)))
        col = start + len(token)
    return out


@pytest.mark.parametrize(
    ("experts", "width"), [(8, 60), (32, 78), (32, 158), (384, 97), (384, 158)]
)
def test_x_ticks_are_integers_under_tick_marks(experts, width):
    rng = np.random.default_rng(experts)
    dist = make(rng.dirichlet(np.ones(experts)), rng.dirichlet(np.ones(experts)), r=4)
    chart = Chart(chart_rows(dist, width, 19))
    labels = tick_labels(chart)
    values = [int(token) for token, _ in labels]  # raises on anything but a whole number
    assert values[0] == 0 and values == sorted(set(values)) and values[-1] <= experts - 1
    axis = chart.plain[chart.axis][chart.margin :]
    marks = [col for col, char in enumerate(axis) if char == "┬"]
    assert len(marks) == len(labels)
    for mark, (_, covered) in zip(marks, labels):  # each label over its tick (centred if it fits)
        assert mark in covered


def test_y_labels_are_magnitudes_mirrored_about_the_zero_line():
    dist = make([0.6, 0.3, 0.1], [0.2, 0.2, 0.6], r=1)
    chart = Chart(chart_rows(dist, 50, 19))
    labels = [line[: chart.margin - 1].strip() for line in chart.plain]
    assert labels[chart.zero] == "0.000"
    above = [labels[chart.zero - k] for k in range(1, chart.up + 1)]
    below = [labels[chart.zero + k] for k in range(1, chart.up + 1)]
    assert above == below
    assert above[-1] == "0.600"  # the top row's upper edge is the largest probability
    assert all(float(v) > 0 for v in above if v)


@pytest.mark.parametrize("experts", [4, 32, 384])
@pytest.mark.parametrize(
    ("width", "height"), [(1, 1), (5, 3), (12, 8), (30, 9), (78, 11), (80, 24), (158, 19), (97, 40)]
)
def test_every_row_fits_and_there_are_exactly_height_rows(experts, width, height):
    rng = np.random.default_rng(0)
    dist = make(rng.dirichlet(np.ones(experts)), rng.dirichlet(np.ones(experts)), r=2)
    rows = chart_rows(dist, width, height)
    assert len(rows) == height
    assert all(row.cell_len <= width for row in rows)


def test_the_title_names_the_layer_and_r_and_a_given_title_replaces_it():
    dist = make([0.5, 0.25, 0.25], [0.4, 0.4, 0.2], r=2, layer=11)
    rows = chart_rows(dist, 80, 12)
    assert rows[0].plain.strip() == "layer 11: P_l(A) up, P_l(B) down; marks: kept at r = 2"
    assert rows[-1].plain.strip() == "expert"
    assert chart_rows(dist, 80, 12, title="sample 4")[0].plain.strip() == "sample 4"


def test_row_strip_paints_what_rich_renders():
    """The line API's fast conversion gives rich's own cells and styles for every chart row."""
    base = Style(color="#e0e0e0", bgcolor="#1e1e1e")
    rng = np.random.default_rng(1)
    for experts, width, height in ((8, 40, 12), (32, 158, 19), (384, 91, 11)):
        dist = make(rng.dirichlet(np.ones(experts)), rng.dirichlet(np.ones(experts)), r=3)
        for row in chart_rows(dist, width, height) + [Text("grey", style="#787878")]:
            row_style = Style.parse(row.style) if isinstance(row.style, str) else row.style
            whole = Span(0, len(row.plain), base + row_style)
            expected = Text(row.plain, spans=[whole, *row.spans]).render(CONSOLE)
            assert cells(expected) == cells(row_strip(row, base))


def cells(segments) -> list[tuple[str, Style | None]]:
    return [(char, segment.style) for segment in segments for char in Segment(*segment).text]
