"""The Samples and Design views (issue 18 in the app): what they show equals core's results.

Expected values are computed by hand loops here (per-sample JS, the sample's
own signature) or read from ``core.samples.analyse`` / ``core.design.design``
called directly, never from the views' own objects.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from textual.widgets import DataTable, SelectionList

from core.design import design
from core.engine import Profile
from core.errors import LensError
from core.formats.mask import read_mask
from core.samples import analyse
from lens_tui.app import build_app
from lens_tui.views.design import DesignView
from lens_tui.views.samples import SamplesView, sample_cells
from lens_tui.widgets.sample_plot import SamplePlot
from tests.lens_tui.helpers import async_test, record_notifications, write_bundles

SIZE = (120, 40)


@pytest.fixture
def paths(tmp_path):
    return write_bundles(tmp_path / "bundles")


def hand_js(p: np.ndarray, q: np.ndarray) -> float:
    """JS divergence in bits of two distributions, as a plain loop."""
    total = 0.0
    for x, y in zip(p, q):
        mid = 0.5 * (x + y)
        if x > 0:
            total += 0.5 * x * np.log2(x / mid)
        if y > 0:
            total += 0.5 * y * np.log2(y / mid)
    return total


async def show(pilot, app, key):
    await pilot.press(key)
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


@async_test
async def test_samples_view_lists_every_sample_sorted_and_plots_the_selected_one(paths):
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "6")
        view = app.query_one(SamplesView)
        table = app.query_one("#samples-table", DataTable)
        report = analyse(Profile.load(paths[0]).bundle, app.r)
        assert table.row_count == report.bundle.num_samples
        # Default order: JS mean, largest first; every row as core formats it.
        bundle = Profile.load(paths[0]).bundle
        prob_sum = np.asarray(bundle.prob_sum, dtype=np.float64)
        tokens = np.asarray(bundle.token_count)
        dataset = prob_sum.sum(axis=0) / tokens.sum()
        hand = [
            np.mean([hand_js(prob_sum[i, l] / tokens[i], dataset[l]) for l in range(4)])
            for i in range(len(tokens))
        ]
        shown_order = [int(str(table.get_row_at(k)[0])) for k in range(table.row_count)]
        assert shown_order == sorted(range(len(hand)), key=lambda i: (-round(hand[i], 9), i))
        for k in range(table.row_count):
            index = shown_order[k]
            cells = [str(c) for c in table.get_row_at(k)]
            assert cells == sample_cells(report, index)
            assert abs(float(cells[3]) - hand[index]) < 6e-5
        # o cycles JS mean → JS max → mask Δ → index → example id → tokens.
        for _ in range(5):
            await pilot.press("o")
        await pilot.pause()
        assert view.sorting.column == "tokens"
        shown = [int(str(table.get_row_at(k)[2]).replace(",", "")) for k in range(table.row_count)]
        assert shown == sorted(shown, reverse=True)
        await pilot.press("O")
        await pilot.pause()
        shown = [int(str(table.get_row_at(k)[2]).replace(",", "")) for k in range(table.row_count)]
        assert shown == sorted(shown)
        # The selected sample's own signature for the selected layer, against the dataset's.
        await pilot.press("down", "down", "right_square_bracket")
        await pilot.pause()
        index = view.selected_sample
        assert index == int(str(table.get_row_at(table.cursor_row)[0]))
        dist = app.query_one(SamplePlot).result
        np.testing.assert_allclose(dist.prob_a, prob_sum[index, 1] / tokens[index], rtol=1e-9)
        np.testing.assert_allclose(dist.prob_b, dataset[1], rtol=1e-9)
        assert dist.layer == 1 and dist.kept_a.sum() == app.r
        # No data file recorded: the view says how to give one.
        assert "type its data file" in str(app.query_one("#sample-text").render())


@async_test
async def test_samples_view_shows_the_text_from_a_typed_data_file(paths, tmp_path):
    data = tmp_path / "alpha.txt"
    data.write_text("".join(f"line number {i}\n\n" for i in range(40)))  # blank lines skipped
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "6")
        view = app.query_one(SamplesView)
        app.query_one("#samples-data").focus()
        await pilot.press(*str(data), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        example = int(Profile.load(paths[0]).bundle.example_ids[view.selected_sample])
        assert f"line number {example}" in str(app.query_one("#sample-text").render())
    assert data.read_text().count("line number") == 40  # read only


@async_test
async def test_design_view_shows_core_design_and_writes_the_mask(paths, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = build_app(paths)
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "7")
        view = app.query_one(DesignView)
        profiles = [Profile.load(p) for p in paths]
        expected = design(profiles, profiles, app.r).to_json()
        assert view.result is not None and view.result.to_json() == expected
        table = app.query_one("#design-table", DataTable)
        # The table is sorted by the worst-served target (▼), so rows are found by name.
        design_row = next(
            [str(c) for c in table.get_row_at(k)]
            for k in range(table.row_count)
            if str(table.get_row_at(k)[0]) == "design (mix)"
        )
        assert design_row[:2] == ["design (mix)", f"{expected['design']['value']:.1%}"]
        uniform = next(
            [str(c) for c in table.get_row_at(k)]
            for k in range(table.row_count)
            if str(table.get_row_at(k)[0]) == "uniform mix"
        )
        assert uniform[1] == f"{expected['baselines']['uniform']['value']:.1%}"
        # Untick the third candidate and target: the design follows.
        for picker in ("#design-candidates", "#design-targets"):
            app.query_one(picker, SelectionList).deselect(2)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        expected = design(profiles[:2], profiles[:2], app.r).to_json()
        assert view.result.to_json() == expected
        # N typed in: the design for that many sequences.
        app.query_one("#design-sequences").focus()
        await pilot.press("1", "0", "enter", "escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        expected = design(profiles[:2], profiles[:2], app.r, 10).to_json()
        assert view.result.to_json() == expected and view.result.sequences == 10
        await pilot.press("w")
        await pilot.pause()
    mask = read_mask(tmp_path / "calib-mask.json")
    assert mask.layers == [
        sorted(np.flatnonzero(row).tolist()) for row in view.result.selection.mask
    ]
    assert not (tmp_path / "calib.jsonl").exists()  # the fixture bundles record no data file


@async_test
async def test_design_refuses_an_output_that_is_an_input_and_is_off_when_served(paths, tmp_path):
    app = build_app(paths)
    seen = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, app, "7")
        before = paths[0].read_bytes()
        out = app.query_one("#design-mask-out")
        out.value = str(paths[0])
        await pilot.press("escape", "w")
        await pilot.pause()
        assert paths[0].read_bytes() == before
        assert any("is an input" in message for _, message in seen)
    served = build_app(paths, read_only=True)
    seen = record_notifications(served)
    async with served.run_test(size=SIZE) as pilot:
        await show(pilot, served, "6")  # no Collect view when served: Design is the 6th
        served.query_one("#design-mask-out").value = str(tmp_path / "m.json")
        await pilot.press("escape", "w")
        await pilot.pause()
        assert any("read-only" in message for _, message in seen)
        assert not (tmp_path / "m.json").exists()
        json.dumps(served.query_one(DesignView).result.to_json())  # the design itself is shown


def test_design_write_takes_each_candidates_texts_from_its_recorded_data_file(paths, tmp_path):
    profiles = [Profile.load(p) for p in paths[:2]]
    files = []
    for profile in profiles:
        data = tmp_path / f"{profile.name}.txt"
        data.write_text("".join(f"{profile.name} text {i}\n" for i in range(60)))
        profile.bundle.metadata["data_source"] = str(data)
        files.append(data)
    result = design(profiles, profiles, 2, 8)
    said = DesignView.write(result, tmp_path / "calib.jsonl", tmp_path / "mask.json")
    assert "8 sequences" in said
    records = [json.loads(line) for line in (tmp_path / "calib.jsonl").read_text().splitlines()]
    assert len(records) == 8
    for record, (c, row) in zip(records, result.selection.picks):
        name = result.candidates[c].name
        example = int(result.candidates[c].profile.bundle.example_ids[row])
        assert record == {"text": f"{name} text {example}", "dataset": name, "example_id": example}
    before = files[0].read_text()
    with pytest.raises(LensError, match="is an input"):
        DesignView.write(result, files[0], tmp_path / "other-mask.json")
    assert files[0].read_text() == before
