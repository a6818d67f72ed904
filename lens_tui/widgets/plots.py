"""plotext panels: one layer's expert distributions, and the ablation curves.

Each widget owns its own ``plt`` (textual-plotext); ``show`` replots from
results the engine computed and refreshes. No metric is computed here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import plotext._utility as plotext_utility
from rich.ansi import AnsiDecoder
from rich.style import Style as RichStyle
from rich.text import Span, Text
from textual.content import Content
from textual.geometry import Region
from textual.strip import Strip
from textual.visual import Visual
from textual_plotext import PlotextPlot

from core.ablation import Ablation
from core.engine import LayerDistribution
from lens_tui.widgets.colors import A_HEX, A_RGB, B_HEX, B_RGB

KEPT_A_MARK = "▼"
KEPT_B_MARK = "▲"
GRID_RGB = (120, 120, 120)
#: Columns of a plot that the y tick labels and the frame take.
PLOT_MARGIN = 8
#: Above this many experts the expert chart is sorted by mass (see ``sorts_experts``).
SORT_ABOVE = 128
BAND_RGB = (170, 170, 120)


class ResultPlot(PlotextPlot):
    """A plot of one engine result (kept as ``result``), redrawn from scratch on each ``show``.

    Drawn line by line (Textual's line API): only the rows on screen are turned
    into strips. At 160×48 the Compare view shows two rows of the expert chart
    until ``l`` scrolls it into view, and a new r used to convert all of it.
    The rows come straight from plotext's cell matrix (markers and colours)
    rather than from its ANSI text parsed back by rich: that round trip cost
    more than plotext's own drawing. The cells and styles are the same
    (``tests/lens_tui/test_widgets.py`` checks the two paths agree).

    What is built is kept per figure key, size and theme: ``show`` of a
    subclass may pass a ``key`` naming the figure, and showing that key again
    at the same size takes the kept rows and skips plotext altogether
    (r + 1 then r − 1 costs nothing).
    """

    #: Figures kept per widget (keyed figures only; a few kB of text each).
    KEPT_FIGURES = 48

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.result: object | None = None
        self._figure: object = object()  # the shown figure's key; unkeyed: a fresh object
        self._built: dict[tuple, list[Text]] = {}
        # (built key, style) -> the strips of the figure's top rows, as many as shown so far
        self._strips: dict[tuple, list[Strip]] = {}
        self._rows_wanted = 0

    def start(self, result: object | None, key: object | None = None):
        """Forget the old figure; returns the widget's own ``plt`` to draw ``result`` on."""
        self.result = result
        self._figure = object() if key is None else key
        self.plt.clear_data()
        self.plt.clear_figure()
        return self.plt

    def is_kept(self, key: object) -> bool:
        """Whether the figure ``key`` is built at this size (showing it again costs nothing)."""
        return self._built_key(key) in self._built

    def shows_kept(self, result: object, key: object) -> bool:
        """Show the figure built before for ``key`` at this size, if kept; whether it was."""
        if not self.is_kept(key):
            return False
        self.result, self._figure = result, key
        self.refresh()
        return True

    def _built_key(self, key: object) -> tuple:
        return (key, self.size.width, self.size.height, self.app.theme)

    def rows(self) -> list[Text]:
        """The current figure, one rich ``Text`` per screen row, built by plotext if not kept."""
        built_key = self._built_key(self._figure)
        rows = self._built.get(built_key)
        if rows is None:
            rows = self._build_rows()
            if len(self._built) >= self.KEPT_FIGURES:
                forgotten = next(iter(self._built))
                self._built.pop(forgotten)
                self._strips = {k: v for k, v in self._strips.items() if k[0] != forgotten}
            self._built[built_key] = rows
        return rows

    def _build_rows(self) -> list[Text]:
        """What ``PlotextPlot.render`` draws, read from plotext's matrix instead of its ANSI text."""
        width, height = self.size
        plt = self._plot
        plt.plotsize(width, height)  # the same set-up as PlotextPlot.render
        plt._set_size(width, height)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        plt._set_sizes()
        plt._build_matrix()
        if plt.monitor.fast_plot:  # plotext's own fast path keeps only text: parse it as before
            return Text.from_ansi(plt.monitor.matrix.get_canvas()).split(allow_blank=True)
        return matrix_rows(plt.monitor.matrix)

    def render(self) -> Text:
        """The whole figure as one text (for what reads a widget's render; the screen uses lines)."""
        return Text("\n").join(self.rows())

    def render_lines(self, crop: Region) -> list[Strip]:
        # How far down the screen shows this widget: render_line builds rows that far at once.
        self._rows_wanted = crop.bottom
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.visual_style
        key = (self._built_key(self._figure), style, self.text_selection)
        strips = self._strips.get(key)
        rows = self.rows()
        shown = min(len(rows), self.size.height)
        if strips is None or len(strips) <= y < shown:
            count = min(shown, max(y + 1, self._rows_wanted))
            # The top rows through the same conversion as a widget's render(): the same
            # cells, styles and offsets as the whole figure's first rows.
            content = Content.from_rich_text(Text("\n").join(rows[:count]), self.app.console)
            strips = Visual.to_strips(self, content, width, count, style)
            self._strips[key] = strips
        if y < len(strips):
            return strips[y]
        return Strip.blank(width, style.rich_style)

    def clear_plot(self, message: str = "") -> None:
        self.start(None).title(message)
        self.refresh()


def matrix_rows(matrix) -> list[Text]:
    """plotext's cell matrix as rich text, top row first: what ``Text.from_ansi`` of its canvas gives.

    plotext's canvas starts each run of cells with one colour set with that
    set's ANSI codes and ends it with a reset; a run of cells here is the same
    run, styled as rich's decoder styles those codes. The final empty line of
    the canvas (after its last newline) is kept.
    """
    rows = []
    for row in range(matrix.rows - 1, -1, -1):
        colors_row = list(zip(matrix.fullground[row], matrix.style[row], matrix.background[row]))
        markers = matrix.marker[row]
        plain, spans, begin, at = [], [], 0, 0
        for col in range(1, len(colors_row) + 1):
            if col == len(colors_row) or colors_row[col] != colors_row[begin]:
                run = "".join(markers[begin:col])
                style = _run_style(*colors_row[begin])
                if style is not None and run:
                    spans.append(Span(at, at + len(run), style))
                plain.append(run)
                at += len(run)
                begin = col
        rows.append(Text("".join(plain), spans=spans))
    rows.append(Text())
    return rows


@lru_cache(maxsize=1024)
def _run_style(fullground, style, background) -> RichStyle | None:
    """The rich style of one colour set, decoded from the codes plotext writes for it."""
    codes = plotext_utility.colors_to_ansi(fullground, style, background)
    decoded = AnsiDecoder().decode_line(codes + "x")
    return decoded.spans[0].style if decoded.spans else None  # type: ignore[return-value]


class ExpertPlot(ResultPlot):
    """P_l(A) as bars up and P_l(B) as bars down, with the experts each top-r mask keeps marked.

    A mirrored ("butterfly") chart keeps both distributions fully visible even
    with 128 experts in 80 columns; the y labels show magnitudes on both sides.
    """

    result: LayerDistribution | None

    def show(self, dist: LayerDistribution, key: object | None = None) -> None:
        """Plot ``dist``; ``key`` names it (see :class:`ResultPlot`): the same key, the same figure."""
        if key is not None and self.shows_kept(dist, key):
            return
        plt = self.start(dist, key)
        count = len(dist.prob_a)
        room = max(1, self.size.width - PLOT_MARGIN)
        sort = sorts_experts(count)
        order = np.argsort(-dist.prob_a, kind="stable") if sort else np.arange(count)
        prob_a, prob_b = dist.prob_a[order], dist.prob_b[order]
        kept_a_mask, kept_b_mask = dist.kept_a[order], dist.kept_b[order]
        xs = list(range(count))
        up, down = prob_a.tolist(), (-prob_b).tolist()
        if 2 * count <= self.size.width:
            plt.bar(xs, up, color=A_RGB, width=0.7, marker="hd")
            plt.bar(xs, down, color=B_RGB, width=0.7, marker="hd")
        else:
            # Too many experts for bars wider than a column: one-column bars (stems) draw
            # the same picture ~5x faster than plotext's rectangles.
            plt.scatter(xs, up, color=A_RGB, marker="█", fillx=True)
            plt.scatter(xs, down, color=B_RGB, marker="█", fillx=True)
        top = float(max(np.max(dist.prob_a), np.max(dist.prob_b), 1e-12))
        kept_a = np.flatnonzero(kept_a_mask).tolist()
        kept_b = np.flatnonzero(kept_b_mask).tolist()
        if sort:
            # A's kept experts are the first r of this order: one boundary line says it.
            plt.vline(dist.r - 0.5, GRID_RGB)
        elif kept_a:
            plt.scatter(kept_a, [top * 1.12] * len(kept_a), marker=KEPT_A_MARK, color=A_RGB)
        if kept_b:
            plt.scatter(kept_b, [-top * 1.12] * len(kept_b), marker=KEPT_B_MARK, color=B_RGB)
        plt.ylim(-top * 1.18, top * 1.18)
        ticks = [-top, -top / 2, 0.0, top / 2, top]
        plt.yticks(ticks, [f"{abs(t):.3f}" for t in ticks])
        plt.xlim(-0.5, count - 0.5)
        plt.xticks(integer_ticks(count, room))
        if sort:
            plt.title(
                f"layer {dist.layer}: {count} experts sorted by P_l(A); left of | = A's top {dist.r}"
            )
            plt.xlabel("rank by P_l(A) (not expert number)")
        else:
            plt.title(f"layer {dist.layer}: P_l(A) up, P_l(B) down; marks: kept at r = {dist.r}")
            plt.xlabel("expert")
        self.refresh()

    def on_resize(self) -> None:
        # The x ticks and bar style depend on the width, unknown at the first show.
        if self.result is not None:
            self.show(self.result, self._figure)

    @staticmethod
    def legend(count: int) -> Text:
        """The line above the chart, for a layer of ``count`` experts."""
        legend = Text()
        if sorts_experts(count):
            legend.append("██ A above (sorted), | A's top-r   ", style=A_HEX)
        else:
            legend.append(f"██ A above, {KEPT_A_MARK} kept by A   ", style=A_HEX)
        legend.append(f"██ B below, {KEPT_B_MARK} kept by B", style=B_HEX)
        return legend


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


class AblationPlot(ResultPlot):
    """Jaccard to the final mask and step to step, against the calibration-sequence count."""

    result: Ablation | None

    def show(
        self,
        ablation: Ablation,
        threshold: float,
        converged_at: int | None,
        band: dict[str, list[float | None]] | None = None,
    ) -> None:
        """Plot the curves; the legend is the view's own line above the plot (see ``legend``).

        plotext draws its legend inside the canvas, top left, exactly where Jaccard
        curves near 1 run, so the view names the colours outside the plot instead.
        ``band`` (``ShuffledAblations.to_json()["to_final_band"]``) adds the to-final
        range over random orders (min and max dotted, median dashed) behind the curves.
        """
        plt = self.start(ablation)
        final = [(c, v) for c, v in zip(ablation.counts, ablation.to_final) if v is not None]
        step = [(c, v) for c, v in zip(ablation.counts, ablation.stepwise) if v is not None]
        band_values: list[float] = []
        for key, marker in (("min", "dot"), ("max", "dot"), ("median", "braille")):
            if band is None or len(band[key]) != len(ablation.counts):
                continue
            points = [(c, v) for c, v in zip(ablation.counts, band[key]) if v is not None]
            if points:
                xs, ys = zip(*points)
                plt.plot(xs, ys, color=BAND_RGB, marker=marker)
                band_values += list(ys)
        if final:
            xs, ys = zip(*final)
            plt.plot(xs, ys, color=A_RGB, marker="braille")
        if step:
            xs, ys = zip(*step)
            plt.plot(xs, ys, color=B_RGB, marker="braille")
        plt.hline(threshold, GRID_RGB)
        lowest = min([v for _, v in final + step] + band_values + [threshold])
        bottom, ticks = round_ticks(lowest)
        plt.ylim(bottom, 1.02)
        plt.yticks(ticks)
        if converged_at is not None:
            plt.vline(converged_at, GRID_RGB)
            plt.text(f"converged n={converged_at}", converged_at, bottom, color=GRID_RGB)
        plt.xlim(0, ablation.counts[-1])
        every = max(1, len(ablation.counts) // 6)
        plt.xticks(sorted({0, *ablation.counts[every - 1 :: every], ablation.counts[-1]}))
        plt.title(f"Jaccard@{ablation.r} vs calibration sequences")
        plt.xlabel("sequences")
        self.refresh()


def round_ticks(lowest: float) -> tuple[float, list[float]]:
    """The y axis bottom and ticks for Jaccard values down to ``lowest``: round numbers only.

    Jaccard curves often live in 0.7..1, so the axis zooms in; the tick step is
    0.05, 0.1 or 0.25 so that at most six ticks show, each a round value.
    """
    for spacing in (0.05, 0.1, 0.25):
        bottom = round(max(0.0, math.floor((lowest - 0.02) / spacing) * spacing), 2)
        count = round((1.0 - bottom) / spacing)
        if count <= 5:
            return bottom, [round(bottom + i * spacing, 2) for i in range(count + 1)]
    return 0.0, [0.0, 0.25, 0.5, 0.75, 1.0]
