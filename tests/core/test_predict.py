"""Predicted vs actual: ranks and Spearman by hand, retained mass and Jaccard against naive
sums over the bundle, bundle pairing, and the evaluation JSON's round trip and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.engine import Profile
from core.errors import LensError
from core.formats.bundle import load_bundle
from core.formats.evaluation import (
    Evaluation,
    MaskResult,
    read_evaluation,
    write_evaluation,
)
from core.masks.make import Mask
from core.predict import average_ranks, own_proxy_mask, predict_vs_actual, spearman

# --------------------------------------------------------------------------- ranks


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks([3.0, 1.0, 2.0]).tolist() == [3.0, 1.0, 2.0]
    assert average_ranks([7, 7, 7]).tolist() == [2.0, 2.0, 2.0]


def test_spearman_hand_worked():
    # No ties: rho = 1 - 6 Σd² / (n(n² - 1)); d = (-1, 1, -1, 1, 0) -> 1 - 24/120 = 0.8.
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # Ties in y: ranks (1, 2, 3.5, 5, 3.5); centred x (-2, -1, 0, 1, 2), y (-2, -1, .5, 2, .5):
    # Σxy = 8, Σx² = 10, Σy² = 9.5 -> 8 / sqrt(95).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / np.sqrt(95))
    assert spearman([0.9, 0.5, 0.7], [0.1, 2.0, 0.4]) == pytest.approx(-1.0)
    assert spearman([1, 2], [2, 1]) is None  # too few points
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # nothing to rank
    assert spearman([1, float("nan"), 3], [1, 2, 3]) is None


# --------------------------------------------------------------------------- fixtures


def mask(layers, name="m", criterion="mass", experts=8) -> Mask:
    return Mask(
        model="tiny-moe",
        num_experts=experts,
        criterion=criterion,
        sources=[],
        layers=layers,
        path=Path(f"{name}.json"),
    )


def result(m: Mask, increase: float, base: float = 2.0) -> MaskResult:
    return MaskResult(
        mask=m,
        name=m.name,
        loss=base + increase,
        perplexity=float(np.exp(base + increase)),
        loss_increase=increase,
        top1_accuracy=0.5,
        top1_agreement=0.9 - increase / 10,
    )


def evaluation(results, dataset="held", layers=3, experts=8) -> Evaluation:
    return Evaluation(
        model="tiny-moe",
        data=f"{dataset}.txt",
        dataset=dataset,
        samples=10,
        tokens=100,
        num_layers=layers,
        num_experts=experts,
        top_k=2,
        baseline={"loss": 2.0, "perplexity": float(np.exp(2.0)), "top1_accuracy": 0.5},
        masks=results,
        family="gpt_oss",
        max_length=64,
    )


# --------------------------------------------------------------------------- predict_vs_actual


def test_points_against_naive_sums_over_the_bundle(bundle_factory):
    path = bundle_factory("held", seed=3)
    bundle = load_bundle(path)
    masks = [
        mask([[0, 1], [2, 3], [4, 5]], "a"),
        mask([[6, 7], [0, 1], [2, 3]], "b"),
        mask([[0, 2, 4], [1, 3, 5], [0, 6, 7]], "c"),  # 3 per layer
    ]
    increases = [0.5, 0.2, 0.9]
    report = predict_vs_actual(
        [evaluation([result(m, d) for m, d in zip(masks, increases)])], [Profile(bundle)]
    )
    prob_sum = np.asarray(bundle.prob_sum, dtype=np.float64)
    tokens = float(np.asarray(bundle.token_count).sum())
    expected_mass = []
    for point, m in zip(report.points, masks):
        per_layer, jaccards = [], []
        for layer, kept in enumerate(m.layers):
            p = [prob_sum[:, layer, e].sum() / tokens for e in range(8)]
            per_layer.append(sum(p[e] for e in kept))
            # Own proxy mask of the same size: the len(kept) experts of largest mass.
            own = sorted(range(8), key=lambda e: (-p[e], e))[: len(kept)]
            jaccards.append(len(set(own) & set(kept)) / len(set(own) | set(kept)))
        assert point.retained_mass == pytest.approx(np.mean(per_layer), abs=1e-12)
        assert point.retained_mass_min == pytest.approx(min(per_layer), abs=1e-12)
        assert point.jaccard == pytest.approx(np.mean(jaccards), abs=1e-12)
        assert point.bundle == str(path)
        expected_mass.append(np.mean(per_layer))
    assert [p.loss_increase for p in report.points] == increases
    assert report.rho_retained_mass == pytest.approx(spearman(expected_mass, increases))
    doc = report.to_json()
    assert doc["spearman"]["retained_mass_vs_loss_increase"] == report.rho_retained_mass
    assert doc["reference"] == "own proxy mask"
    json.dumps(doc, allow_nan=False)


def test_a_fixed_reference_mask_and_a_perfectly_predicted_ordering(bundle_factory):
    bundle = load_bundle(bundle_factory("held", seed=5, layers=2))
    p = Profile(bundle).prob
    best = own_proxy_mask(p, [4, 4])
    # Masks keeping the 4 best, the 2nd..5th, 3rd..6th and 5th..8th experts by mass: retained
    # mass falls strictly; give loss increases that rise, so ρ must be exactly −1.
    order = np.argsort(-p, axis=1, kind="stable")
    masks = [
        mask([sorted(order[l, s : s + 4].tolist()) for l in range(2)], f"m{s}")
        for s in (0, 1, 2, 4)
    ]
    assert masks[0].as_bool().tolist() == best.tolist()
    report = predict_vs_actual(
        [evaluation([result(m, 0.1 * (i + 1)) for i, m in enumerate(masks)], layers=2)],
        [Profile(bundle)],
        reference=masks[0],
    )
    assert report.rho_retained_mass == pytest.approx(-1.0)
    assert report.reference == "m0"
    assert [pt.jaccard for pt in report.points] == pytest.approx([1.0, 3 / 5, 2 / 6, 0.0])
    assert report.rho_jaccard == pytest.approx(-1.0)
    assert "predicted the ordering" in report.verdict
    only = predict_vs_actual(
        [evaluation([result(m, 0.1) for m in masks], layers=2)], [Profile(bundle)], only=["m1"]
    )
    assert [pt.mask for pt in only.points] == ["m1"]
    assert only.rho_retained_mass is None and "not enough" in only.verdict


def test_bundles_are_paired_with_evaluations_by_dataset(bundle_factory):
    held = Profile(load_bundle(bundle_factory("held", seed=1)))
    other = Profile(load_bundle(bundle_factory("other", seed=2)))
    m = mask([[0, 1], [2, 3], [4, 5]])
    ev_held, ev_other = evaluation([result(m, 0.3)], "held"), evaluation([result(m, 0.4)], "other")
    report = predict_vs_actual([ev_other, ev_held], [held, other])
    assert [p.bundle for p in report.points] == [str(other.bundle.path), str(held.bundle.path)]
    # One bundle serves every evaluation when it is the only one given.
    assert predict_vs_actual([ev_other], [held]).points[0].bundle == str(held.bundle.path)
    with pytest.raises(LensError, match="no bundle of its data 'third' among"):
        predict_vs_actual([evaluation([result(m, 0.1)], "third")], [held, other])
    with pytest.raises(LensError, match="no bundle given"):
        predict_vs_actual([ev_held], [])
    wide = Profile(load_bundle(bundle_factory("wide", experts=16)))
    with pytest.raises(LensError, match="has L=3, E=16 but .* E=8"):
        predict_vs_actual([ev_held], [wide])
    with pytest.raises(LensError, match="reference mask has L=1"):
        predict_vs_actual([ev_held], [held], reference=mask([[0, 1]]))
    with pytest.raises(LensError, match="no masks"):
        predict_vs_actual([evaluation([])], [held])


# --------------------------------------------------------------------------- the JSON file


def test_evaluation_json_round_trip(tmp_path):
    m = mask([[0, 1], [2, 3], [4, 5, 6]], "c4-mass")
    original = evaluation([result(m, 0.25)])
    path = write_evaluation(tmp_path / "eval.json", original)
    text = path.read_text()
    assert "[4, 5, 6]" in text  # one line per layer
    again = read_evaluation(path)
    assert again.to_json() == original.to_json()
    assert again.masks[0].mask.layers == m.layers
    assert again.masks[0].mask.path == Path("c4-mass.json")
    doc = json.loads(text)
    assert doc["format"] == "expert-calibration-lens/evaluation"
    assert doc["masks"][0]["loss_increase"] == 0.25
    assert doc["masks"][0]["kept_per_layer"] == [2, 2, 3]


def _write(tmp_path: Path, doc: object, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_bad_evaluation_files_are_one_clear_line(tmp_path):
    good = evaluation([result(mask([[0, 1], [2, 3], [4, 5]]), 0.2)]).to_json()
    cases = [
        ("{not json", "not valid JSON"),
        ([1, 2], "not an object"),
        ({**good, "format": "expert-calibration-lens/mask"}, "that is a mask"),
        ({**good, "format_version": 9}, "format_version 9 is not supported"),
        ({k: v for k, v in good.items() if k != "dataset"}, "has no 'dataset'"),
        ({**good, "baseline": {"loss": "x"}}, "baseline 'loss' must be a finite number"),
        ({**good, "masks": [{**good["masks"][0], "loss": None}]}, "masks[0] 'loss' must be"),
        ({**good, "masks": [{**good["masks"][0], "layers": [[0, 9]] * 3}]}, "names expert 9"),
        ({**good, "masks": [{**good["masks"][0], "layers": [[0, 1]]}]}, "has 1 layers but"),
    ]
    for doc, needle in cases:
        path = _write(tmp_path, doc)
        with pytest.raises(LensError) as info:
            read_evaluation(path)
        message = str(info.value)
        assert needle in message and str(path) in message and "\n" not in message, message
    with pytest.raises(LensError, match="no such file"):
        read_evaluation(tmp_path / "missing.json")
