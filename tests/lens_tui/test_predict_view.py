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
from core.formats.evaluation import Evaluation, MaskResult, read_evaluation, write_evaluation
from core.formats.mask import Mask, write_mask
from core.predict import predict_vs_actual
from core.predictor_choice import relative_scores
from core.predictors import PREDICTORS
from core.rank_tests import RankTest
from lens_tui.app import build_app
from lens_tui.prediction_plot import rho_text
from lens_tui.views.compare import CompareView
from lens_tui.views.predict import (
    NO_EVALUATIONS,
    PredictionPlot,
    PredictView,
    rank_cell,
    row_cells,
)
from tests.conftest import make_bundle
from tests.lens_tui.helpers import async_test, record_notifications, screen_text
from tests.lens_tui.study_fixture import energy_share_by_hand, write_study
from tests.lens_tui.test_snapshots import settled

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


def _retained_mass_by_hand(bundle, layers) -> float:
    """mean_l Σ_{e kept} P_l(D)[e], by loops over the bundle's prob_sum."""
    prob = np.asarray(bundle.prob_sum, dtype=np.float64)
    tokens = float(np.asarray(bundle.token_count).sum())
    return float(
        np.mean(
            [
                sum(prob[i, layer, e] for i in range(prob.shape[0]) for e in kept) / tokens
                for layer, kept in enumerate(layers)
            ]
        )
    )


def _plotted(app) -> list[tuple[int, float]]:
    return [(n, x) for n, x, _ in app.query_one("#predict-plot", PredictionPlot).plotted]


@async_test
async def test_p_switches_the_scatter_to_each_predictors_values_by_hand(tmp_path):
    paths = write_study(tmp_path / "study")
    held = load_bundle(paths["heldout"])
    evaluation = read_evaluation(paths["eval"])
    layers = [r.mask.layers for r in evaluation.masks]
    energy = np.asarray(held.get("energy_sum"), dtype=np.float64)
    slots = np.asarray(held.get("topk_count"), dtype=np.float64)
    by_hand = {
        "retained_mass": [_retained_mass_by_hand(held, kept) for kept in layers],
        "retained_energy": [energy_share_by_hand(energy, kept) for kept in layers],
        "retained_topk": [energy_share_by_hand(slots, kept) for kept in layers],
    }
    app = build_app([tmp_path / "study"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        view = app.query_one("#predict-view", PredictView)
        summary = app.query_one("#predict-summary")
        masks = app.query_one("#predict-table", DataTable)
        for keys, predictor in (
            ([], "retained_mass"),
            (["p"] * 3, "retained_energy"),
            (["p"] * 2, "retained_topk"),
            (["P"] * 2, "retained_energy"),
            (["P"] * 3, "retained_mass"),
            (["P"], "topk_intact"),  # wraps round
        ):
            await pilot.press(*keys)
            await pilot.pause()
            assert view.predictor == predictor
            assert f"x = {predictor} (" in str(summary.render())
            plot = app.query_one("#predict-plot", PredictionPlot)
            assert f"x = {predictor};" in screen_text(plot)
            if predictor in by_hand:
                expected = [100.0 * v for v in by_hand[predictor]]
                assert [n for n, _ in _plotted(app)] == list(range(1, len(expected) + 1))
                assert [x for _, x in _plotted(app)] == pytest.approx(expected, rel=1e-6)
                shown = [str(masks.get_row_at(i)[4]) for i in range(masks.row_count)]
                assert shown == [f"{v:.1%}" for v in by_hand[predictor]]


@async_test
async def test_tests_table_lists_every_predictor_and_group_and_marks_x_and_the_verdicts(tmp_path):
    write_study(tmp_path / "study")
    app = build_app([tmp_path / "study"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await pilot.pause()
        tests = app.query_one("#predict-tests", DataTable)
        headers = [str(c.label) for c in tests.columns.values()]
        # In the report's order, by data (▲: the sort column; Predict's sorting is tested in
        # test_sorting_and_filter), each evaluation's predictors in PREDICTORS' order.
        assert headers == ["", "data ▲", "predictor", "all masks", "same data", "criterion mass"]
        rows = {str(tests.get_row_at(i)[2]): [str(c) for c in tests.get_row_at(i)]
                for i in range(tests.row_count)}  # fmt: skip
        assert list(rows) == list(PREDICTORS)
        # The loss increase is 1 − the energy share by construction: ρ = −1 exactly, and the
        # bootstrap interval of a perfect ranking is [−1, −1]; 8 same-data masks, 11 in all.
        energy = rows["retained_energy"]
        assert energy[0] == "✓" and energy[3].startswith("-1.00 [-1.00,-1.00]")
        assert energy[3].endswith(" n11") and energy[4].endswith(" n8")
        assert rows["retained_mass"][0] == "▶"
        summary = str(app.query_one("#predict-summary").render())
        assert "Compare's verdict uses ✓ retained_energy: best-validated" in summary
        # Enter on a row plots its predictor.
        tests.focus()
        tests.move_cursor(row=list(rows).index("retained_reap"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(PredictView).predictor == "retained_reap"
        assert str(tests.get_row_at(list(rows).index("retained_reap"))[0]) == "▶"


@async_test
async def test_palette_entries_switch_the_predictor_from_any_view(tmp_path):
    write_study(tmp_path / "study")
    app = build_app([tmp_path / "study"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        assert all(f"Predict x: {name}" in commands for name in PREDICTORS)
        commands["Predict x: topk_intact"]()  # from Compare: the Predict view is not mounted
        await pilot.pause()
        await pilot.pause()
        assert app.query_one("#views").active == "predict"
        view = app.query_one(PredictView)
        assert view.predictor == "topk_intact"
        assert app.query_one("#predict-plot", PredictionPlot).predictor == "topk_intact"


@async_test
async def test_compare_verdict_uses_the_predictor_the_evaluations_validate(tmp_path):
    paths = write_study(tmp_path / "study")
    app = build_app([tmp_path / "study"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        a, b = Profile.load(paths["calib"]), Profile.load(paths["heldout"])  # A, B by name
        compare_view = app.query_one(CompareView)
        basis = compare_view.basis
        assert basis is not None and basis.choice.name == "retained_energy"
        ab, ba = relative_scores("retained_energy", a, b, app.r)
        assert (basis.a_to_b, basis.b_to_a) == pytest.approx((ab, ba))
        text = " ".join(str(app.query_one("#verdict").render()).split())
        assert "by retained_energy" in text
        if ab >= 0.95 or ba < 0.95:  # the sentence shows A→B unless only B→A is safe
            assert f"scores {ab:.1%}" in text
        else:
            assert f"heldout is a safe surrogate for calib at r={app.r}" in text
            assert f"scores {ba:.1%} of calib's own" in text
        assert "retained_energy is the best-validated predictor among similar masks" in text
        assert "ρ = -1.00 [-1.00, -1.00] over 8 similar masks on heldout" in text


@async_test
async def test_compare_verdict_says_no_predictor_was_validated(tmp_path):
    write_folder(tmp_path / "runs")  # 4 masks without sources: no similar-mask group
    app = build_app([tmp_path / "runs"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = " ".join(str(app.query_one("#verdict").render()).split())
        assert "no predictor was validated among similar masks" in text
        assert "no evaluation has 3+ masks from its own data's group" in text
        assert "relative retained mass decides" in text


def test_predict_tests_80x24(snap_compare, tmp_path):
    write_study(tmp_path / "study")
    assert snap_compare(
        build_app([tmp_path / "study"]), terminal_size=(80, 24), run_before=settled("5", "v")
    )


def test_predict_switched_160x48(snap_compare, tmp_path):
    write_study(tmp_path / "study")
    app = build_app([tmp_path / "study"])
    assert snap_compare(app, terminal_size=(160, 48), run_before=settled("5", "p", "p", "p"))


def test_rank_cell_formats_rho_interval_p_and_n():
    assert (
        rank_cell(RankTest(-0.8421, (-0.951, -0.6249), 0.0123, 19)) == "-.84 [-.95,-.62] p.012 n19"
    )
    assert rank_cell(RankTest(1.0, (1.0, 1.0), 0.0004998, 8)) == "+1.00 [+1.00,+1.00] p<.001 n8"
    assert rank_cell(RankTest(None, None, None, 2)) == "— n2"
    assert rank_cell(None) == ""


@async_test
async def test_an_evaluation_loaded_later_changes_the_verdicts_basis(tmp_path):
    paths = write_study(tmp_path / "study")
    moved = tmp_path / "later.json"
    paths["eval"].rename(moved)  # start with the bundles only
    app = build_app([tmp_path / "study"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.query_one(CompareView)
        assert view.basis is not None and view.basis.choice.evaluations == 0
        assert "no evaluation loaded" in str(app.query_one("#verdict").render())
        assert app.add_evaluation(moved)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.basis is not None and view.basis.choice.name == "retained_energy"
        assert "by retained_energy" in " ".join(str(app.query_one("#verdict").render()).split())
