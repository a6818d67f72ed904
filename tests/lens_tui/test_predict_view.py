"""The Predict view (5): evaluation results beside the loaded bundles, through Pilot and a
snapshot; every shown number is core.predict's, and missing pieces are said, not crashed on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable

from core.engine import Profile
from core.formats.bundle import load_bundle
from core.formats.evaluation import Evaluation, MaskResult, write_evaluation
from core.formats.mask import Mask, write_mask
from core.predict import predict_vs_actual
from lens_tui.app import build_app
from lens_tui.prediction_plot import rho_text
from lens_tui.views.predict import NO_EVALUATIONS, PredictionPlot, PredictView, row_cells
from tests.conftest import make_bundle
from tests.lens_tui.helpers import async_test, record_notifications, screen_text

SIZE = (100, 40)
LAYERS, EXPERTS = 4, 8


def write_folder(folder: Path, *, evaluation_dataset: str = "heldout") -> dict[str, Path]:
    """Two bundles (one of the evaluation data), a mask file, and an evaluation of 4 masks."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        name: make_bundle(
            folder / f"{name}.safetensors",
            n=32,
            layers=LAYERS,
            experts=EXPERTS,
            seed=seed,
            concentration=0.3,
        )
        for name, seed in (("heldout", 21), ("calib", 22))
    }
    prob = Profile.load(paths["heldout"]).prob
    order = np.argsort(-prob, axis=1, kind="stable")
    results = []
    for i, start in enumerate((0, 1, 3, 4)):
        layers = [sorted(order[layer, start : start + 4].tolist()) for layer in range(LAYERS)]
        mask = Mask("tiny-moe", EXPERTS, "mass", [], layers, path=folder / f"mask{start}.json")
        increase = [0.11, 0.34, 0.29, 0.82][i]
        results.append(
            MaskResult(
                mask,
                f"mask{start}",
                2.0 + increase,
                float(np.exp(2.0 + increase)),
                increase,
                0.4,
                0.95 - 0.1 * i,
            )  # fmt: skip
        )
    write_mask(folder / "mask0.json", results[0].mask)  # a mask file in the folder is skipped
    evaluation = Evaluation(
        model="tiny-moe",
        data=f"{evaluation_dataset}.txt",
        dataset=evaluation_dataset,
        samples=32,
        tokens=640,
        num_layers=LAYERS,
        num_experts=EXPERTS,
        top_k=2,
        baseline={"loss": 2.0, "perplexity": float(np.exp(2.0)), "top1_accuracy": 0.41},
        masks=results,
    )
    paths["eval"] = write_evaluation(folder / "eval.json", evaluation)
    return paths


@async_test
async def test_predict_view_shows_core_predict_for_the_loaded_bundles(tmp_path):
    paths = write_folder(tmp_path / "runs")
    app = build_app([tmp_path / "runs"])
    seen = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert not [s for s in seen if s[0] == "error"], seen
        view = app.query_one("#predict-view", PredictView)
        from core.formats.evaluation import read_evaluation

        expected = predict_vs_actual(
            [read_evaluation(paths["eval"])],
            [Profile(load_bundle(paths["heldout"])), Profile(load_bundle(paths["calib"]))],
        )
        assert view.report is not None and view.report.to_json() == expected.to_json()
        table = app.query_one("#predict-table", DataTable)
        assert table.row_count == 4
        for index, point in enumerate(expected.points):
            assert [str(c) for c in table.get_row_at(index)] == row_cells(index + 1, point)
            assert point.bundle == str(paths["heldout"])  # paired by dataset, not "calib"
        # Retained mass of the first mask by hand: the 4 most-routed experts of each layer.
        tensors = load_bundle(paths["heldout"])
        prob = np.asarray(tensors.prob_sum, np.float64).sum(0) / tensors.num_tokens
        by_hand = np.mean([np.sort(prob[layer])[::-1][:4].sum() for layer in range(LAYERS)])
        assert expected.points[0].retained_mass == pytest.approx(by_hand)
        assert str(table.get_row_at(0)[4]) == f"{by_hand:.1%}"
        summary = str(app.query_one("#predict-summary").render())
        assert rho_text(expected.rho_retained_mass) in summary and expected.verdict in summary
        plot = app.query_one("#predict-plot", PredictionPlot)
        assert plot.result is view.report
        assert "predicted vs actual" in screen_text(plot)
        assert app.focused is table


@async_test
async def test_predict_view_says_what_is_missing(tmp_path):
    app = build_app([write_folder(tmp_path / "a")["heldout"]])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        message = str(app.query_one("#predict-message").render())
        assert "No evaluation results loaded" in message and NO_EVALUATIONS.startswith(
            message.split(".")[0]
        )
        assert app.query_one("#predict-table", DataTable).row_count == 0

    paths = write_folder(tmp_path / "b", evaluation_dataset="elsewhere")
    bad = tmp_path / "b" / "broken.json"
    bad.write_text(json.dumps({"format": "expert-calibration-lens/evaluation"}))
    app = build_app([paths["heldout"], paths["eval"], bad])
    seen = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        message = str(app.query_one("#predict-message").render())
        assert "no loaded bundle of the data of eval (data 'elsewhere')" in message
        errors = [text for severity, text in seen if severity == "error"]
        assert any("broken.json" in text and "format_version" in text for text in errors), seen
        assert len(app.profiles) == 1 and len(app.evaluations) == 1


def test_predict_80x24(snap_compare, tmp_path):
    write_folder(tmp_path / "runs")
    assert snap_compare(build_app([tmp_path / "runs"]), press=["5"], terminal_size=(80, 24))
