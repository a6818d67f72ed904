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


def point_mark(number: int) -> str:
    """The one-character mark of point ``number`` (1-based) in the scatter and the tables."""
    marks = "123456789abcdefghijklmnopqrstuvwxyz"
    return marks[number - 1] if 1 <= number <= len(marks) else "●"


def draw_prediction(plt: Any, report: PredictionReport) -> None:
    """Scatter every point with a known retained mass on ``plt`` (a plotext figure), each drawn
    as its mark (see :func:`point_mark`), coloured by evaluation dataset."""
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
    xs = [100.0 * p.retained_mass for _, p in shown]  # type: ignore[operator]
    ys = [p.loss_increase for _, p in shown]
    x_pad = max((max(xs) - min(xs)) * 0.08, 0.5)
    y_pad = max((max(ys) - min(ys)) * 0.1, 1e-3)
    plt.xlim(min(xs) - x_pad, max(xs) + x_pad)
    plt.ylim(min(ys) - y_pad, max(ys) + y_pad)
    datasets = list(dict.fromkeys(p.dataset for _, p in shown))
    labelled: set[str] = set()
    for (number, point), x, y in zip(shown, xs, ys):
        index = datasets.index(point.dataset)
        label = None
        if len(datasets) > 1 and point.dataset not in labelled:
            label = point.dataset
            labelled.add(point.dataset)
        color = PALETTE[index % len(PALETTE)]
        plt.scatter([x], [y], marker=point_mark(number), color=color, label=label)


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
