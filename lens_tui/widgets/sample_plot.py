"""One calibration sample's routing against its dataset's, for one layer (the Samples view)."""

from __future__ import annotations

from core.engine import LayerDistribution
from lens_tui.widgets.plots import ExpertPlot


class SamplePlot(ExpertPlot):
    """The mirrored expert chart with the sample's p_i,l up and the dataset's P_l down.

    Same drawing as the Compare view's chart (so the two read alike); only the
    title names what is plotted.
    """

    def show_sample(self, dist: LayerDistribution, index: int) -> None:
        title = f"sample {index}, layer {dist.layer}: sample up, dataset down; marks: top {dist.r}"
        self.show(dist, title=title)
