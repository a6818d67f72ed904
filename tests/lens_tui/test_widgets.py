"""Drawing helpers of the app's widgets: sparkline scales and bins, plot ticks, scrollbars."""

from __future__ import annotations

import pytest

from lens_tui.widgets.expert_chart import integer_ticks, sorts_experts
from lens_tui.widgets.plots import round_ticks
from lens_tui.widgets.sparkline import BARS, SparkPanel, SparkSpec, bar_levels, bins, most_unusual
from tests.lens_tui.helpers import async_test


def test_a_constant_row_with_float_noise_is_drawn_flat():
    # 1 - 1e-16 and 1.0 print as 1.0000 … 1.0000: they must not draw ▁ … █.
    values = [1.0, 1.0 - 1e-16, 1.0, 1.0 - 2e-16]
    assert bar_levels(values) == [3, 3, 3, 3]
    assert bar_levels([0.5, 0.5]) == [3, 3]
    # A real difference still spans the scale.
    assert bar_levels([0.0, 0.5, 1.0]) == [0, 4, 7]  # round(0.5 * 7) = 4 (banker's: 3.5 → 4)


def test_bins_cover_every_layer_once_in_order():
    groups = bins(61, 20)
    assert len(groups) == 20
    flat = [layer for group in groups for layer in group]
    assert flat == list(range(61))
    assert {len(group) for group in groups} <= {3, 4}


def test_the_most_unusual_value_of_a_group_survives_binning():
    values = [0.5, 0.5, 0.9, 0.5, None, 0.1]
    assert most_unusual(values, range(0, 4), centre=0.5) == 0.9
    assert most_unusual(values, range(3, 6), centre=0.5) == 0.1
    assert most_unusual(values, range(4, 5), centre=0.5) is None


def test_round_ticks_are_round_and_cover_the_curves():
    for lowest in (0.93, 0.71, 0.42, 0.05, 0.0):
        bottom, ticks = round_ticks(lowest)
        assert bottom <= lowest and ticks[0] == bottom and ticks[-1] == 1.0
        assert len(ticks) <= 6
        spacing = ticks[1] - ticks[0]
        assert any(abs(spacing - s) < 1e-9 for s in (0.05, 0.1, 0.25))
        for tick in ticks:  # each a multiple of 0.05, printed with at most two decimals
            assert abs(tick * 20 - round(tick * 20)) < 1e-9
    assert round_ticks(0.93) == (0.9, [0.9, 0.95, 1.0])


@pytest.mark.parametrize(
    ("count", "room", "expected"),
    [
        (8, 70, [0, 1, 2, 3, 4, 5, 6, 7]),
        (32, 60, [0, 5, 10, 15, 20, 25, 30]),
        (384, 91, [0, 50, 100, 150, 200, 250, 300, 350, 383]),
    ],
)
def test_expert_ticks_are_whole_numbers_at_round_spacing(count, room, expected):
    assert integer_ticks(count, room) == expected


def test_only_large_layers_are_sorted_by_mass():
    assert not sorts_experts(128) and sorts_experts(384)


@async_test
async def test_a_panel_narrower_than_the_layers_fits_them_all_and_says_so():
    from textual.app import App

    values = [0.5] * 61
    values[60] = 0.9  # the odd last layer: it must be drawn, not cut off with …

    class Host(App[None]):
        def compose(self):
            yield SparkPanel([SparkSpec("x", "metric", "", "white")], id="sparks")

    app = Host()
    async with app.run_test(size=(80, 5)) as pilot:
        panel = app.query_one(SparkPanel)
        panel.set_values({"x": values}, selected=60)
        await pilot.pause()
        row = panel.render().plain.splitlines()[0]
        room = 80 - SparkPanel.LABEL_WIDTH - SparkPanel.RANGE_WIDTH - 1
        bars = row[SparkPanel.LABEL_WIDTH : SparkPanel.LABEL_WIDTH + room]
        assert "…" not in bars
        assert bars == BARS[0] * (room - 1) + BARS[-1]  # last bar holds layer 60
        assert panel.border_subtitle == (
            f"61 layers in {room} bars (~{61 / room:.1f} per bar, the most unusual shown)"
        )
        panel.set_values({"x": values[:30]}, selected=0)  # fits: one bar per layer, no note
        await pilot.pause()
        assert panel.border_subtitle == ""
