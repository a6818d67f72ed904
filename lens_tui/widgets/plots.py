"""The app's chart panels: one layer's expert distributions, and the ablation curves.

The expert chart is laid out cell by cell by :mod:`lens_tui.widgets.expert_chart`
(it redraws on every key); the other panels are plotext figures, each widget
owning its own ``plt`` (textual-plotext). ``show`` draws results the engine
computed and refreshes. No metric is computed here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import plotext._utility as plotext_utility
from rich.ansi import AnsiDecoder
from rich.style import Style as RichStyle
from rich.text import Span, Text
from textual.content import Content
from textual.geometry import Region
from textual.strip import Strip
from textual.visual import Visual
from textual.widget import Widget
from textual_plotext import PlotextPlot

from core.ablation import Ablation
from core.engine import LayerDistribution
from lens_tui.widgets.colors import A_HEX, A_RGB, B_HEX, B_RGB, GRID_RGB
from lens_tui.widgets.expert_chart import (
    KEPT_A_MARK,
    KEPT_B_MARK,
    centred,
    chart_rows,
    sorts_experts,
)
from lens_tui.widgets.text_strip import row_strip

BAND_RGB = (170, 170, 120)


class ResultPlot(PlotextPlot):
    """A plotext plot of one engine result (kept as ``result``), redrawn from scratch on each ``show``.

    Drawn line by line (Textual's line API): only the rows on screen are turned
    into strips. The rows come straight from plotext's cell matrix (markers
    and colours) rather than from its ANSI text parsed back by rich: that round
    trip cost more than plotext's own drawing. The cells and styles are the
    same (``tests/lens_tui/test_key_repaint.py`` checks the two paths agree).
    The figure is built once per size and theme, until the next ``show``.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.result: object | None = None
        self._figure: object = object()  # a fresh object per figure: what is built belongs to it
        self._built: dict[tuple, list[Text]] = {}
        # (built key, style) -> the strips of the figure's top rows, as many as shown so far
        self._strips: dict[tuple, list[Strip]] = {}
        self._rows_wanted = 0

    def start(self, result: object | None):
        """Forget the old figure; returns the widget's own ``plt`` to draw ``result`` on."""
        self.result = result
        self._figure = object()
        self._built, self._strips = {}, {}
        self.plt.clear_data()
        self.plt.clear_figure()
        return self.plt

    def _built_key(self) -> tuple:
        return (self._figure, self.size.width, self.size.height, self.app.theme)

    def rows(self) -> list[Text]:
        """The current figure, one rich ``Text`` per screen row, built by plotext if not yet."""
        built_key = self._built_key()
        rows = self._built.get(built_key)
        if rows is None:
            rows = self._build_rows()
            self._built = {built_key: rows}  # another size or theme: the old rows are no use
            self._strips = {}
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
        key = (self._built_key(), style, self.text_selection)
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


class ExpertPlot(Widget):
    """P_l(A) as bars up and P_l(B) as bars down, with the experts each top-r mask keeps marked.

    A mirrored ("butterfly") chart keeps both distributions fully visible even
    with 128 experts in 80 columns; the y labels show magnitudes on both sides.
    The rows come from :func:`chart_rows` (numpy, no plotext): a figure costs
    well under a millisecond, so a new (layer, r) draws it in the same frame as
    the numbers and nothing is kept beyond the figure shown. Drawn line by line
    (Textual's line API): only the rows on screen become strips (at 160×48 the
    Compare view shows two rows of the chart until ``l`` scrolls it into view).
    """

    DEFAULT_CSS = """
    ExpertPlot {
        width: 1fr;
        height: 1fr;
        background: $surface;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.result: LayerDistribution | None = None
        self._figure: object = None  # the shown figure's key (None: unkeyed)
        self._title: str | None = None  # set: replaces the chart's own title
        self._rows: list[Text] | None = None  # the figure at ``_rows_size``
        self._rows_size: tuple[int, int] = (0, 0)
        self._strips: dict[int, Strip] = {}  # by row, for ``_strips_style``
        self._strips_style: RichStyle | None = None

    def show(
        self, dist: LayerDistribution, key: object | None = None, title: str | None = None
    ) -> None:
        """Draw ``dist``; the same ``key`` as the figure shown means the same figure: no redraw.

        ``title`` replaces the chart's own (the Samples view names its sample).
        """
        if key is not None and key == self._figure and self.result is not None:
            return
        self.result, self._figure, self._title = dist, key, title
        self._forget()

    def clear_plot(self, message: str = "") -> None:
        """No chart: ``message`` (if any) where the title goes."""
        self.result, self._figure, self._title = None, None, message
        self._forget()

    def _forget(self) -> None:
        self._rows = None
        self._strips = {}
        if self.is_attached and not self.screen.can_view_partial(self):
            # Scrolled out of view (the Compare view at 160×48 until ``l``): refreshing a
            # widget off screen makes Textual map every widget again on the next frame
            # (each new r). Dropping the lines drawn is enough: they are drawn anew from
            # the new figure when the chart comes into view.
            self._styles_cache.clear()
            return
        self.refresh()

    def rows(self) -> list[Text]:
        """The current figure at the current size, one rich ``Text`` per screen row."""
        size = (self.size.width, self.size.height)
        if self._rows is None or self._rows_size != size:
            width, height = size
            if self.result is None:
                rows = [centred(self._title or "", width)] if height else []
                self._rows = rows + [Text() for _ in range(height - len(rows))]
            else:
                self._rows = chart_rows(self.result, width, height, self._title)
            self._rows_size = size
            self._strips = {}
        return self._rows

    def render(self) -> Text:
        """The whole figure as one text (for what reads a widget's render; the screen uses lines)."""
        return Text("\n").join(self.rows())

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.visual_style.rich_style
        rows = self.rows()
        if style != self._strips_style:  # a new theme or background
            self._strips, self._strips_style = {}, style
        strip = self._strips.get(y)
        if strip is None:
            if y < len(rows):
                strip = row_strip(rows[y], style).crop_extend(0, width, style)
            else:
                strip = Strip.blank(width, style)
            self._strips[y] = strip
        return strip

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
