"""The app's views, in tab order: adding a view is a module in this package plus one line here.

The app builds its tabs, the number keys ``1``…``N``, the command palette's
"View:" commands, the help's per-view key sections and the focus on
switching from this list; nothing in ``lens_tui/app.py`` names a view.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.widget import Widget

from lens_tui.views.ablation import AblationView
from lens_tui.views.collect import CollectView
from lens_tui.views.compare import CompareView
from lens_tui.views.design import DesignView
from lens_tui.views.matrix import MatrixView
from lens_tui.views.predict import PredictView
from lens_tui.views.samples import SamplesView


@dataclass(frozen=True)
class ViewSpec:
    """One view: its tab id, the label of its tab and key, and the widget class that draws it.

    ``view`` is constructed as ``view(id=f"{id}-view")``; if it mixes in
    :class:`~lens_tui.views.base.SelectionView` it follows the selection.
    ``focus`` is the selector (inside the view) that takes the focus when the
    view is shown; ``None`` focuses the view itself.
    """

    id: str
    label: str
    view: type[Widget]
    tooltip: str
    focus: str | None = None
    writes: bool = False  # left out of a read-only (served) app

    @property
    def widget_id(self) -> str:
        return f"{self.id}-view"


#: The views in tab order; the n-th is shown by key n.
VIEWS: list[ViewSpec] = []


def register(spec: ViewSpec) -> ViewSpec:
    """Append a view to the tabs (keys run 1 to 9, so at most nine)."""
    if any(existing.id == spec.id for existing in VIEWS):
        raise ValueError(f"a view with id {spec.id!r} is registered already")
    if len(VIEWS) >= 9:
        raise ValueError("at most nine views: the number keys 1-9 show them")
    VIEWS.append(spec)
    return spec


register(ViewSpec("compare", "Compare", CompareView, "Compare view", focus="#layer-table"))
register(ViewSpec("ablation", "Ablation", AblationView, "Ablation view"))
register(ViewSpec("matrix", "Matrix", MatrixView, "N-way matrix view", focus="#matrix-bundles"))
register(ViewSpec("collect", "Collect", CollectView, "Collection view", writes=True))
register(ViewSpec("predict", "Predict", PredictView, "Predicted vs actual", focus="#predict-table"))
register(ViewSpec("samples", "Samples", SamplesView, "Samples of A", focus="#samples-table"))
register(
    ViewSpec("design", "Design", DesignView, "Design a calibration set", focus="#design-candidates")
)
