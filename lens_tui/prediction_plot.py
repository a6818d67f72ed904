"""The predicted-vs-actual scatter, drawn on any plotext figure (CLI or the app's widget).

x: one predictor of the mask's damage (:data:`core.predictors.PREDICTORS`;
by default ``retained_mass``, the routing mass of the evaluation data that a
mask keeps, the paper's prediction), y: the loss increase measured by
``lens evaluate``. Each point is labelled with its row number in the table
beside it. No metric is computed here; the points and ρ come from
:func:`core.predict.predict_vs_actual`.
"""

from __future__ import annotations

from typing import Any

from core.predict import Point, PredictionReport

#: The predictor on the x axis unless the user picks another (the paper's).
DEFAULT_PREDICTOR = "retained_mass"
#: What each predictor's x axis says in words (all are shares, shown in %).
AXIS_LABELS = {
    "retained_mass": "routing mass kept",
    "retained_mass_min": "routing mass kept, worst layer",
    "retained_mass_rel": "attainable routing mass kept",
    "retained_energy": "output energy kept",
    "retained_reap": "REAP mass kept",
    "retained_topk": "top-k slots kept",
    "topk_intact": "tokens with whole top-k kept",
}

#: One colour per evaluation dataset (RGB), cycled.
PALETTE = ((64, 160, 255), (255, 150, 50), (120, 200, 90), (220, 90, 200), (240, 220, 60))


def rho_text(rho: float | None) -> str:
    return "—" if rho is None else f"{rho:+.2f}"


def point_mark(number: int) -> str:
    """The one-character mark of point ``number`` (1-based) in the scatter and the tables."""
    marks = "123456789abcdefghijklmnopqrstuvwxyz"
    return marks[number - 1] if 1 <= number <= len(marks) else "●"


def x_value(point: Point, predictor: str) -> float | None:
    """The point's value of ``predictor`` (what the scatter plots on x), None if unknown."""
    return point.predictors.get(predictor)


def axis_label(predictor: str) -> str:
    """``retained_energy: output energy kept (%)``: the predictor's name and its meaning."""
    words = AXIS_LABELS.get(predictor)
    return f"{predictor}: {words} (%)" if words else f"{predictor} (%)"


def dataset_colors(
    report: PredictionReport, predictor: str = DEFAULT_PREDICTOR
) -> list[tuple[str, tuple[int, int, int]]]:
    """(dataset, RGB) in the order the scatter colours them: the legend, drawn outside the plot.

    plotext's own legend repeats each series' marker (``11 code_python``) and sits
    on top of the points; the app and the CLI print this one above the plot instead.
    """
    datasets = list(
        dict.fromkeys(p.dataset for p in report.points if x_value(p, predictor) is not None)
    )
    return [(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(datasets)]


def draw_prediction(
    plt: Any, report: PredictionReport, predictor: str = DEFAULT_PREDICTOR
) -> list[tuple[int, float, float]]:
    """Scatter every point with a known value of ``predictor`` on ``plt`` (a plotext figure),
    each drawn as its mark (see :func:`point_mark`), coloured by evaluation dataset.

    Returns the (table number, x in %, y) of every point drawn: what is on the
    screen, for the view to keep and the tests to check. The y axis is named in
    the title: plotext puts a y label under the x axis, where it reads as a
    second x label.
    """
    shown = [
        (number, p)
        for number, p in enumerate(report.points, start=1)
        if x_value(p, predictor) is not None
    ]
    plt.title(
        f"predicted vs actual: y = loss increase, x = {predictor}; "
        f"ρ = {rho_text(report.rho(predictor))}"
    )
    plt.xlabel(axis_label(predictor))
    if not shown:
        return []
    xs = [100.0 * x_value(p, predictor) for _, p in shown]  # type: ignore[operator]
    ys = [p.loss_increase for _, p in shown]
    x_pad = max((max(xs) - min(xs)) * 0.08, 0.5)
    y_pad = max((max(ys) - min(ys)) * 0.1, 1e-3)
    plt.xlim(min(xs) - x_pad, max(xs) + x_pad)
    plt.ylim(min(ys) - y_pad, max(ys) + y_pad)
    colors = dict(dataset_colors(report, predictor))
    for (number, point), x, y in zip(shown, xs, ys):
        plt.scatter([x], [y], marker=point_mark(number), color=colors[point.dataset])
    return [(number, x, y) for (number, _), x, y in zip(shown, xs, ys)]


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
    text = text if color else plotext.uncolorize(text)
    legend = "  ".join(
        f"\x1b[38;2;{r};{g};{b}m■ {name}\x1b[0m" if color else f"■ {name}"
        for name, (r, g, b) in dataset_colors(report)
    )
    return f"colour = data: {legend}; marks = the table's # column\n{text}"
