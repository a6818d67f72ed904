"""The predicted-vs-actual scatter, drawn on any plotext figure (CLI or the app's widget).

x: the routing mass of the evaluation data that a mask keeps (the lens's
prediction), y: the loss increase measured by ``lens evaluate``. Each point is
labelled with its row number in the table beside it. No metric is computed
here; the points come from :func:`core.predict.predict_vs_actual`.
"""

from __future__ import annotations

from typing import Any

from core.predict import PredictionReport

#: One colour per evaluation dataset (RGB), cycled.
PALETTE = ((64, 160, 255), (255, 150, 50), (120, 200, 90), (220, 90, 200), (240, 220, 60))


def rho_text(rho: float | None) -> str:
    return "—" if rho is None else f"{rho:+.2f}"


def draw_prediction(plt: Any, report: PredictionReport) -> None:
    """Scatter every point with a known retained mass on ``plt`` (a plotext figure)."""
    shown = [
        (number, p)
        for number, p in enumerate(report.points, start=1)
        if p.retained_mass is not None
    ]
    plt.title(
        f"predicted vs actual: Spearman ρ(retained mass, loss increase) = "
        f"{rho_text(report.rho_retained_mass)}"
    )
    plt.xlabel("predicted: routing mass kept (%)")
    plt.ylabel("loss increase")
    if not shown:
        return
    xs_all = [100.0 * p.retained_mass for _, p in shown]  # type: ignore[operator]
    ys_all = [p.loss_increase for _, p in shown]
    x_low, x_high = min(xs_all), max(xs_all)
    x_pad = max((x_high - x_low) * 0.08, 0.5)
    y_low, y_high = min(ys_all), max(ys_all)
    y_pad = max((y_high - y_low) * 0.1, 1e-3)
    plt.xlim(x_low - x_pad, x_high + 2 * x_pad)
    plt.ylim(y_low - y_pad, y_high + y_pad)
    nudge = (x_high - x_low + 3 * x_pad) * 0.025  # labels just right of their point
    datasets = list(dict.fromkeys(p.dataset for _, p in shown))
    for index, dataset in enumerate(datasets):
        color = PALETTE[index % len(PALETTE)]
        rows = [(n, x, y) for (n, p), x, y in zip(shown, xs_all, ys_all) if p.dataset == dataset]
        label = dataset if len(datasets) > 1 else None
        plt.scatter(
            [x for _, x, _ in rows], [y for _, _, y in rows], color=color, marker="●", label=label
        )
        for number, x, y in rows:
            plt.text(str(number), x + nudge, y, color=color, alignment="left")


def prediction_text(
    report: PredictionReport, width: int = 100, height: int = 22, color: bool = True
) -> str:
    """The scatter as terminal text (plotext) for the CLI; ANSI colours unless ``color`` is false."""
    import plotext

    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    draw_prediction(plotext, report)
    text = plotext.build()
    plotext.clear_figure()
    return text if color else plotext.uncolorize(text)
