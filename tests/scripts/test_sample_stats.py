"""The shipped ``sample_stats/`` bundles, and the script that builds them.

Three promises are checked here:

1. every bundle in ``sample_stats/`` loads, passes docs/formats.md §Bundle validation,
   carries provenance, and shows real structure (routing clearly concentrated,
   datasets measurably different) -- computed with naive numpy, not the engine;
2. ``scripts/build_sample_stats.py`` (its stages in ``scripts/sample_build/``)
   collects through the project's own pipeline, ``core.collect.runner.run_collection``, and evaluates through
   ``core.evaluate.runner.run_evaluation``, and nothing else;
3. the shipped evaluation results (``eval_*.json``) load, pair with the
   shipped bundles, hold self-consistent numbers, agree with ``summary.json``,
   and the app opens them in its Predict view without a notification.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.formats.bundle import REQUIRED_METADATA, load_bundle, validate
from scripts.sample_build import cli, collection
from scripts.sample_build import evaluation as evaluation_stage

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_stats"
BUNDLES = sorted(SAMPLES.glob("*.safetensors"))
EVALUATIONS = sorted(SAMPLES.glob("eval_*.json"))


def _signature(prob_sum: np.ndarray, token_count: np.ndarray) -> np.ndarray:
    """P_l(S) [L, E] the slow, obvious way."""
    return np.asarray(prob_sum, dtype=np.float64).sum(axis=0) / float(np.sum(token_count))


def _js_bits(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over layers of the Jensen-Shannon divergence in bits, by explicit loops."""
    values = []
    for pl, ql in zip(p, q):
        pl, ql = pl / pl.sum(), ql / ql.sum()
        mid = (pl + ql) / 2
        kl_p = sum(a * np.log2(a / m) for a, m in zip(pl, mid) if a > 0)
        kl_q = sum(b * np.log2(b / m) for b, m in zip(ql, mid) if b > 0)
        values.append(0.5 * kl_p + 0.5 * kl_q)
    return float(np.mean(values))


# --------------------------------------------------------------------------- shipped bundles


def test_sample_stats_folder_is_shipped_and_small():
    assert len(BUNDLES) >= 8, "sample_stats/ should hold the sample bundles"
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 20 * 1024 * 1024
    names = {p.stem for p in BUNDLES}
    assert {"news_en", "wiki_en", "code_python", "mixed"} <= names
    assert sum(n.startswith("dialogue_") for n in names) >= 4  # several languages


@pytest.mark.parametrize("path", BUNDLES, ids=[p.stem for p in BUNDLES])
def test_bundle_loads_validates_and_has_provenance(path):
    bundle = load_bundle(path)
    validate(bundle)
    meta = bundle.metadata
    for key in REQUIRED_METADATA:
        assert meta[key], key
    assert meta["dataset"] == path.stem
    assert "gpt-oss" in meta["model"]  # the trained sample model, not a hub id or abs path
    assert not meta["model"].startswith("/")
    # written by the collection pipeline: it records the tool and its version
    assert meta["tool"] == "expert-calibration-lens" and meta["tool_version"], meta
    assert meta["architecture"] == "GptOssForCausalLM"
    assert meta["sample_build"] == "scripts/build_sample_stats.py"
    assert bundle.num_samples >= 100
    # every optional statistic was collected (energy on)
    for name in ("energy_sum", "topk_count", "weight_sum", "reap_sum"):
        assert bundle.has(name), name
    top_k = int(meta["top_k"])
    counts = np.asarray(bundle.get("topk_count")).sum(axis=2)  # [N, L]
    expected = np.broadcast_to(top_k * np.asarray(bundle.token_count)[:, None], counts.shape)
    assert np.array_equal(counts, expected)  # every token went to exactly top_k experts


def test_routing_is_concentrated_in_every_layer():
    """N_eff = 1 / sum p^2 per layer, below E (the untrained model gives 31.8-31.9 of 32).

    The trained model's last layer is the least concentrated at the dataset level
    (about 16-27 of 32, see sample_stats/README.md). Every set has a layer at most 2/3 of E;
    the 68-language mixture is the most spread (its most concentrated layer about 20 of 32),
    the single-language sets reach 4-12.
    """
    all_layers = []
    for path in BUNDLES:
        bundle = load_bundle(path)
        p = _signature(bundle.prob_sum, bundle.token_count)
        assert np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
        n_eff = 1.0 / (p**2).sum(axis=1)
        num_experts = bundle.num_experts
        assert np.all(n_eff < 0.92 * num_experts), (path.stem, n_eff)
        assert n_eff.mean() < 0.75 * num_experts, (path.stem, n_eff)
        assert n_eff.min() < 2 / 3 * num_experts, (path.stem, n_eff)
        all_layers.extend(n_eff / num_experts)
    assert np.median(all_layers) < 0.6


def test_datasets_differ_beyond_the_split_half_noise_floor():
    profiles = {}
    floors = []
    for path in BUNDLES:
        bundle = load_bundle(path)
        ps, tc = np.asarray(bundle.prob_sum), np.asarray(bundle.token_count)
        profiles[path.stem] = _signature(ps, tc)
        even, odd = np.arange(0, len(tc), 2), np.arange(1, len(tc), 2)
        floors.append(_js_bits(_signature(ps[even], tc[even]), _signature(ps[odd], tc[odd])))
    floor = max(floors)
    names = sorted(profiles)
    pairs = {
        (a, b): _js_bits(profiles[a], profiles[b])
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }
    assert max(pairs.values()) > 5 * floor, (floor, max(pairs.values()))
    # natural language vs code, and two languages, differ clearly
    assert pairs[("code_python", "wiki_en")] > 3 * floor
    assert pairs[("dialogue_en", "dialogue_ja")] > 3 * floor


def test_summary_json_matches_the_bundles():
    summary = json.loads((SAMPLES / "summary.json").read_text())
    assert set(summary["sets"]) == {p.stem for p in BUNDLES}
    for path in BUNDLES:
        bundle = load_bundle(path)
        p = _signature(bundle.prob_sum, bundle.token_count)
        n_eff = 1.0 / (p**2).sum(axis=1)
        assert np.allclose(summary["sets"][path.stem]["n_eff_per_layer"], n_eff, atol=0.01)


# --------------------------------------------------------------------------- the script


def test_command_runs_every_stage_in_order_by_default():
    """The bare command means every stage, in the documented order; named stages run alone."""
    assert list(cli.STAGES) == [
        "corpora",
        "tokenizer",
        "train",
        "collect",
        "summary",
        "evaluate",
        "design",
    ]
    assert cli.parse_args([]).stages == "all"
    assert cli.parse_args(["collect", "summary"]).stages == ["collect", "summary"]
    with pytest.raises(SystemExit):
        cli.parse_args(["bake"])


def test_entry_script_runs_the_package_command():
    """``scripts/build_sample_stats.py`` is a thin shell: ``--help`` lists the package's stages."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_sample_stats.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "{corpora,tokenizer,train,collect,summary,evaluate,design,all}" in done.stdout
    assert "Build ``sample_stats/``: a small GPT-OSS" in done.stdout


def test_script_collects_through_run_collection(monkeypatch, tmp_path):
    """collect_one hands everything to run_collection and writes nothing itself."""
    from core.collect import runner

    calls = []

    def spy(config, progress=None, should_stop=None):
        calls.append(config)
        return Path(config.out)

    monkeypatch.setattr(runner, "run_collection", spy)
    out = tmp_path / "x.safetensors"
    result = collection.collect_one(
        "some/model",
        tmp_path / "data.jsonl",
        out,
        dataset_name="x",
        num_samples=5,
        max_length=16,
        batch_size=2,
    )
    assert result == out
    assert not out.exists()  # the script wrote no bundle of its own
    (config,) = calls
    assert isinstance(config, runner.CollectConfig)
    assert (config.options.model, config.out, config.options.dataset_name) == (
        "some/model",
        out,
        "x",
    )
    options = config.options
    assert (options.num_samples, options.max_length, options.batch_size) == (5, 16, 2)


def test_script_bundle_equals_run_collection_bundle(tmp_path):
    """On a tiny GPT-OSS, the script's collection step gives exactly run_collection's bundle."""
    pytest.importorskip("torch")
    from core.collect.runner import CollectConfig, run_collection
    from tests.tiny_models import TRAINING_TEXT, build_tiny_model

    model = build_tiny_model("gpt_oss", tmp_path / "model")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TRAINING_TEXT[:6]))
    via_script = collection.collect_one(
        model,
        data,
        tmp_path / "script.safetensors",
        dataset_name="tiny",
        num_samples=6,
        max_length=24,
        batch_size=4,
    )
    direct = run_collection(
        CollectConfig.from_settings(
            model=str(model),
            data=str(data),
            out=tmp_path / "direct.safetensors",
            num_samples=6,
            max_length=24,
            batch_size=4,
            dataset_name="tiny",
            device="cpu",
            dtype="float32",
        )
    )
    a, b = load_bundle(via_script), load_bundle(direct)
    assert set(a.tensors) == set(b.tensors)
    for name in a.tensors:
        assert np.array_equal(np.asarray(a.tensors[name]), np.asarray(b.tensors[name])), name
    # Same provenance too, apart from the time of the run and the output path.
    args_a, args_b = json.loads(a.metadata["collect_args"]), json.loads(b.metadata["collect_args"])
    assert args_a.pop("out") != args_b.pop("out")
    assert args_a == args_b
    same_keys = (set(a.metadata) | set(b.metadata)) - {"created_at", "collect_args"}
    assert {k: a.metadata.get(k) for k in same_keys} == {k: b.metadata.get(k) for k in same_keys}
    assert a.metadata["tool"] == "expert-calibration-lens"


def test_script_evaluates_through_run_evaluation(monkeypatch, tmp_path):
    """evaluate_one hands everything to run_evaluation and writes its result with
    write_evaluation: the shipped results come from what ``lens evaluate`` runs."""
    from core.evaluate import runner
    from core.formats.evaluation import read_evaluation

    calls = []
    shipped = read_evaluation(EVALUATIONS[0])

    def spy(config, progress=None, should_stop=None):
        calls.append(config)
        return shipped

    monkeypatch.setattr(runner, "run_evaluation", spy)
    masks = [tmp_path / "a.json", tmp_path / "b.json"]
    out = tmp_path / "eval_x.json"
    result = evaluation_stage.evaluate_one(
        "some/model", tmp_path / "x.jsonl", masks, out, max_length=16, batch_size=2
    )
    assert result == out
    (config,) = calls
    assert isinstance(config, runner.EvaluateConfig)
    assert (config.options.model, config.options.data, list(config.masks)) == (
        "some/model",
        str(tmp_path / "x.jsonl"),
        masks,
    )
    options = config.options
    assert (options.max_length, options.batch_size, options.device) == (16, 2, "cpu")
    written = read_evaluation(out)
    assert written.to_json() == shipped.to_json()  # written as is, nothing recomputed


def test_the_second_budget_goes_to_a_folder_of_its_own():
    main = evaluation_stage.evaluation_file("wiki_en", 8, 8)
    other = evaluation_stage.evaluation_file("wiki_en", 16, 8)
    assert main.name == other.name == "eval_wiki_en.json"  # both pair with wiki_en's bundle
    assert other.parent == main.parent / "r16"


def test_share_of_mask_pairs_with_disjoint_intervals_by_hand():
    from scripts.sample_build.prediction import _interval_overlap_share

    intervals = [(0.0, 1.0), (0.5, 2.0), (3.0, 4.0), (1.5, 3.5)]
    # pairs: (0,1) overlap, (0,2) apart, (0,3) apart, (1,2) apart, (1,3) overlap, (2,3) overlap
    assert _interval_overlap_share(intervals) == pytest.approx(3 / 6)
    assert _interval_overlap_share([(0.0, 1.0)]) is None


def test_evaluation_data_is_new_text_only(tmp_path):
    """The evaluation samples come after the bundle's, and a set whose next samples were
    trained on, or are another bundle's calibration samples, is not evaluated."""
    from types import SimpleNamespace

    def calibration(name, texts, used):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        meta = {"data_source": str(path), "collect_args": json.dumps({"data": str(path)})}
        return SimpleNamespace(metadata=meta, example_ids=np.arange(used))

    bundles = {
        "a": calibration("a", ["a0", "a1", "a2", "a3", "a4"], 3),  # a3, a4 are new
        "b": calibration("b", ["b0", "b1", "trained", "b3"], 2),  # b2 was trained on
        "c": calibration("c", ["c0", "a1", "c2"], 1),  # c1 is a's calibration sample
        "d": calibration("d", ["d0", "d1"], 1),  # one left, two needed
    }
    chosen, skipped = evaluation_stage.evaluation_data(bundles, {"trained"}, 2)
    assert list(chosen) == ["a"]
    assert chosen["a"]["texts"] == ["a3", "a4"]
    assert (chosen["a"]["first_example_id"], chosen["a"]["last_example_id"]) == (3, 4)
    assert "1 are training texts" in skipped["b"]
    assert "1 are calibration samples" in skipped["c"]
    assert skipped["d"].startswith("1 samples after the 1")


# --------------------------------------------------------------------------- shipped evaluations


def _ranks(values):
    """1-based ranks, ties sharing their mean rank, by counting."""
    return np.array(
        [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]
    )


def _spearman(x, y):
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def test_shipped_evaluations_load_and_pair_with_the_shipped_bundles():
    from core.engine import Profile
    from core.formats.evaluation import evaluation_files, read_evaluation
    from core.predict import matching_profile

    assert {p.stem for p in EVALUATIONS} >= {"eval_wiki_en", "eval_code_python"}
    # summary.json lies in the same folder and is not taken for a result
    assert evaluation_files([SAMPLES]) == EVALUATIONS
    profiles = [Profile.load(p) for p in BUNDLES]
    for path in EVALUATIONS:
        evaluation = read_evaluation(path)
        bundle_path = SAMPLES / f"{evaluation.dataset}.safetensors"
        assert path.stem == f"eval_{evaluation.dataset}"
        assert matching_profile(evaluation, profiles).bundle.path == bundle_path
        bundle = load_bundle(bundle_path)
        assert evaluation.model == bundle.model and not evaluation.model.startswith("/")
        assert (evaluation.num_layers, evaluation.num_experts) == (
            bundle.num_layers,
            bundle.num_experts,
        )
        assert evaluation.family == "gpt_oss" and evaluation.extra["tool_version"]
        # the evaluation samples are the lines after the ones the bundle holds
        first, last = evaluation.extra["evaluation_data"]["example_ids"]
        assert first > int(np.max(bundle.example_ids))
        assert evaluation.samples == last - first + 1 >= 100
        assert evaluation.extra["evaluation_data"]["source"] == bundle.metadata["data_source"]


@pytest.mark.parametrize("path", EVALUATIONS, ids=[p.stem for p in EVALUATIONS])
def test_shipped_evaluation_numbers_are_consistent(path):
    from core.formats.evaluation import read_evaluation

    evaluation = read_evaluation(path)
    base = evaluation.baseline
    assert base["perplexity"] == pytest.approx(np.exp(base["loss"]), rel=1e-9)
    assert evaluation.tokens > evaluation.samples
    r = json.loads((SAMPLES / "summary.json").read_text())["r"]
    signatures = {
        str(p.relative_to(REPO)): _signature(load_bundle(p).prob_sum, load_bundle(p).token_count)
        for p in BUNDLES
    }
    criteria = set()
    for result in evaluation.masks:
        criteria.add(result.mask.criterion)
        assert result.loss_increase == pytest.approx(result.loss - base["loss"], abs=1e-12)
        assert result.perplexity == pytest.approx(np.exp(result.loss), rel=1e-9)
        assert 0 <= result.top1_accuracy <= 1 and 0 < result.top1_agreement <= 1
        assert result.mask.kept_per_layer == [r] * evaluation.num_layers
        if result.mask.criterion == "mass":
            # a bundle's mass mask: the r experts of highest P_l, worked out here
            (source,) = result.mask.sources
            top = [sorted(np.argsort(-p)[:r].tolist()) for p in signatures[source]]
            assert result.mask.layers == top, result.name
    assert {"mass", "aimer", "coverage"} <= criteria
    mass = [m for m in evaluation.masks if m.mask.criterion == "mass"]
    assert len(mass) == len(BUNDLES)  # every sample bundle's mass mask


def test_summary_evaluation_matches_the_shipped_results():
    """The rank correlations in summary.json, recomputed here from the shipped files."""
    from core.formats.evaluation import read_evaluation

    section = json.loads((SAMPLES / "summary.json").read_text())["evaluation"]
    evaluations = [read_evaluation(p) for p in EVALUATIONS]
    assert set(section["sets"]) == {e.dataset for e in evaluations}
    pooled_mass, pooled_loss = [], []
    for evaluation in evaluations:
        entry = section["sets"][evaluation.dataset]
        bundle = load_bundle(SAMPLES / f"{evaluation.dataset}.safetensors")
        p = _signature(bundle.prob_sum, bundle.token_count)
        kept_mass = [float(np.mean((p * r.mask.as_bool()).sum(axis=1))) for r in evaluation.masks]
        increases = [r.loss_increase for r in evaluation.masks]
        assert [m["name"] for m in entry["masks"]] == [r.name for r in evaluation.masks]
        for row, mass, result in zip(entry["masks"], kept_mass, evaluation.masks):
            assert row["retained_mass"] == pytest.approx(mass, abs=1e-4)
            assert row["loss_increase"] == pytest.approx(result.loss_increase, abs=1e-4)
        rho = entry["spearman"]["retained_mass_vs_loss_increase"]
        assert rho == pytest.approx(_spearman(kept_mass, increases), abs=1e-3)
        assert entry["baseline"]["loss"] == pytest.approx(evaluation.baseline["loss"], abs=1e-4)
        pooled_mass += kept_mass
        pooled_loss += increases
    rho = section["pooled"]["retained_mass_vs_loss_increase"]
    assert rho == pytest.approx(_spearman(pooled_mass, pooled_loss), abs=1e-3)


def test_app_opens_the_sample_stats_with_its_evaluations_quietly():
    """``lens`` on sample_stats/: no notification (summary.json is not a result), and the
    Predict view shows every shipped mask with the pooled correlation of summary.json."""
    import asyncio

    from textual.widgets import DataTable

    from lens_tui.app import build_app
    from lens_tui.views.predict import PredictView
    from tests.lens_tui.helpers import record_notifications

    pooled = json.loads((SAMPLES / "summary.json").read_text())["evaluation"]["pooled"]

    async def run():
        app = build_app([SAMPLES])
        seen = record_notifications(app)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("5")
            await pilot.pause()
            assert seen == []
            assert len(app.evaluations) == len(EVALUATIONS)
            report = app.query_one("#predict-view", PredictView).report
            assert report is not None and len(report.points) == pooled["masks"]
            assert report.rho_retained_mass == pytest.approx(
                pooled["retained_mass_vs_loss_increase"], abs=1e-3
            )
            assert app.query_one("#predict-table", DataTable).row_count == pooled["masks"]

    asyncio.run(run())
