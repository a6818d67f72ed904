"""plotext panels: one layer's expert distributions, and the ablation curves.

Each widget owns its own ``plt`` (textual-plotext); ``show`` replots from
results the engine computed and refreshes. No metric is computed here.
"""

from __future__ import annotations

import math

import numpy as np
from textual_plotext import PlotextPlot

from core.ablation import Ablation
from core.engine import LayerDistribution
from lens_tui.widgets.colors import A_RGB, B_RGB

KEPT_A_MARK = "▼"
KEPT_B_MARK = "▲"
GRID_RGB = (120, 120, 120)
BAND_RGB = (170, 170, 120)


class ResultPlot(PlotextPlot):
    """A plot of one engine result (kept as ``result``), redrawn from scratch on each ``show``."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.result: object | None = None

    def start(self, result: object | None):
        """Forget the old figure; returns the widget's own ``plt`` to draw ``result`` on."""
        self.result = result
        self.plt.clear_data()
        self.plt.clear_figure()
        return self.plt

    def clear_plot(self, message: str = "") -> None:
        self.start(None).title(message)
        self.refresh()


class ExpertPlot(ResultPlot):
    """P_l(A) as bars up and P_l(B) as bars down, with the experts each top-r mask keeps marked.

    A mirrored ("butterfly") chart keeps both distributions fully visible even
    with 128 experts in 80 columns; the y labels show magnitudes on both sides.
    """

    result: LayerDistribution | None

    def show(self, dist: LayerDistribution) -> None:
        plt = self.start(dist)
        experts = list(range(len(dist.prob_a)))
        up, down = dist.prob_a.tolist(), (-dist.prob_b).tolist()
        if 2 * len(experts) <= self.size.width:
            plt.bar(experts, up, color=A_RGB, width=0.7, marker="hd")
            plt.bar(experts, down, color=B_RGB, width=0.7, marker="hd")
        else:
            # Too many experts for bars wider than a column: one-column bars (stems) draw
            # the same picture ~5x faster than plotext's rectangles.
            plt.scatter(experts, up, color=A_RGB, marker="█", fillx=True)
            plt.scatter(experts, down, color=B_RGB, marker="█", fillx=True)
        top = float(max(np.max(dist.prob_a), np.max(dist.prob_b), 1e-12))
        kept_a = np.flatnonzero(dist.kept_a).tolist()
        kept_b = np.flatnonzero(dist.kept_b).tolist()
        if kept_a:
            plt.scatter(kept_a, [top * 1.12] * len(kept_a), marker=KEPT_A_MARK, color=A_RGB)
        if kept_b:
            plt.scatter(kept_b, [-top * 1.12] * len(kept_b), marker=KEPT_B_MARK, color=B_RGB)
        plt.ylim(-top * 1.18, top * 1.18)
        ticks = [-top, -top / 2, 0.0, top / 2, top]
        plt.yticks(ticks, [f"{abs(t):.3f}" for t in ticks])
        plt.title(f"layer {dist.layer}: P_l(A) up, P_l(B) down; marks: kept at r = {dist.r}")
        plt.xlabel("expert")
        self.refresh()


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
        """Plot the curves; ``band`` (``ShuffledAblations.to_json()["to_final_band"]``) adds the
        to-final range over random orders (min and max dotted, median dashed) behind them."""
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
                label = (
                    "orders: median"
                    if key == "median"
                    else ("orders: range" if key == "min" else None)
                )
                plt.plot(xs, ys, label=label, color=BAND_RGB, marker=marker)
                band_values += list(ys)
        if final:
            xs, ys = zip(*final)
            plt.plot(xs, ys, label="to final", color=A_RGB, marker="braille")
        if step:
            xs, ys = zip(*step)
            plt.plot(xs, ys, label="stepwise", color=B_RGB, marker="braille")
        plt.hline(threshold, GRID_RGB)
        if converged_at is not None:
            plt.vline(converged_at, GRID_RGB)
        # Zoom on the range the curves use (Jaccard is often 0.7..1): bottom at a 0.05 step.
        lowest = min([v for _, v in final + step] + band_values + [threshold])
        bottom = max(0.0, math.floor((lowest - 0.05) * 20) / 20)
        plt.ylim(bottom, 1.02)
        ticks = [bottom + (1.0 - bottom) * i / 4 for i in range(4)]
        plt.yticks(sorted({round(t, 3) for t in ticks} | {threshold, 1.0}))
        plt.xlim(0, ablation.counts[-1])
        every = max(1, len(ablation.counts) // 6)
        plt.xticks(sorted({0, *ablation.counts[every - 1 :: every], ablation.counts[-1]}))
        plt.title(f"Jaccard@{ablation.r} vs calibration sequences")
        plt.xlabel("sequences")
        self.refresh()
