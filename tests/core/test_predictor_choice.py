"""Which predictor the Compare verdict uses: the rule on hand-made evaluation results, the
relative scores against a hand loop over the bundles, and the verdict's words."""

from __future__ import annotations

import numpy as np
import pytest

from core.engine import SAFE_SURROGATE_MASS, Profile, compare, is_safe, verdict
from core.formats.bundle import load_bundle
from core.predict import EvaluationTests, PredictorTest
from core.predictor_choice import (
    PredictorChoice,
    VerdictBasis,
    choose_predictor,
    relative_scores,
    verdict_basis,
)
from core.predictors import PREDICTORS
from core.rank_tests import RankTest
from tests.conftest import make_bundle

UNRESOLVED = RankTest(-0.2, (-0.7, 0.4), 0.5, 12)


def _test(rho: float, lo: float, hi: float, n: int = 12) -> RankTest:
    return RankTest(rho, (lo, hi), 0.01, n)


def _evaluation(name: str, same_data: dict[str, RankTest | None]) -> EvaluationTests:
    """An evaluation whose every predictor has a strong overall ρ; ``same_data`` as given."""
    predictors = []
    for predictor in PREDICTORS:
        groups = {"criterion:mass": _test(-0.9, -0.99, -0.8)}
        test = same_data.get(predictor, UNRESOLVED)
        if test is not None:
            groups["same_data"] = test
        predictors.append(PredictorTest(predictor, _test(-0.9, -0.97, -0.8, 60), groups))
    return EvaluationTests(name, name.removeprefix("eval_"), predictors)


def test_none_loaded_none_tested_none_validated_are_said_apart():
    nothing = choose_predictor([])
    assert nothing.name is None and "no evaluation loaded" in nothing.reason()
    untested = choose_predictor([_evaluation("eval_a", dict.fromkeys(PREDICTORS))])
    assert untested.name is None and untested.tested == 0
    assert "no evaluation has 3+ masks from its own data's group" in untested.reason()
    # A strong overall ρ (across languages) and a strong criterion group do not validate.
    unresolved = choose_predictor([_evaluation("eval_a", {})])
    assert unresolved.name is None and unresolved.tested == 1
    assert "no ρ interval below 0 in all 1 evaluation(s)" in unresolved.reason()
    assert "no predictor was validated among similar masks" in unresolved.reason()


def test_the_interval_must_exclude_zero_on_the_negative_side():
    positive = choose_predictor([_evaluation("eval_a", {"retained_energy": _test(0.8, 0.5, 0.95)})])
    assert positive.name is None  # "more predicted → more loss": the wrong sign
    touching = choose_predictor(
        [_evaluation("eval_a", {"retained_energy": _test(-0.6, -0.9, 0.0)})]
    )
    assert touching.name is None  # an interval reaching 0 does not exclude it
    below = choose_predictor([_evaluation("eval_a", {"retained_energy": _test(-0.6, -0.9, -0.1)})])
    assert below.name == "retained_energy" and below.validated
    assert [e.evaluation for e in below.evidence] == ["eval_a"]
    assert "retained_energy is the best-validated predictor" in below.reason()
    assert "ρ = -0.60 [-0.90, -0.10] over 12 similar masks on a" in below.reason()


def test_every_evaluation_that_tests_it_must_agree():
    strong = _test(-0.7, -0.9, -0.4)
    split = choose_predictor(
        [_evaluation("eval_a", {"retained_reap": strong}), _evaluation("eval_b", {})]
    )
    assert split.name is None and split.tested == 2  # unresolved on b: does not carry over
    # An evaluation without a same_data test for it is no evidence either way.
    held = choose_predictor(
        [
            _evaluation("eval_a", {"retained_reap": strong}),
            _evaluation("eval_b", {"retained_reap": None}),
        ]
    )
    assert held.name == "retained_reap" and len(held.evidence) == 1


def test_strongest_evidence_is_the_weakest_interval_furthest_below_zero():
    tests = [
        _evaluation(
            "eval_a",
            {
                "retained_mass": _test(-0.9, -0.98, -0.05),  # strong ρ, but one bound near 0
                "topk_intact": _test(-0.5, -0.7, -0.3),
                "retained_topk": _test(-0.6, -0.8, -0.3),
            },
        ),
        _evaluation(
            "eval_b",
            {
                "retained_mass": _test(-0.8, -0.9, -0.6),
                "topk_intact": _test(-0.6, -0.8, -0.35),
                "retained_topk": _test(-0.6, -0.8, -0.35),
            },
        ),
    ]
    choice = choose_predictor(tests, evaluations=3)
    # Worst upper bounds: retained_mass −0.05, topk_intact −0.30, retained_topk −0.30;
    # the tie goes to the more negative mean ρ (−0.60 against −0.55).
    assert choice.name == "retained_topk"
    assert choice.evaluations == 3 and choice.tested == 2
    assert [e.dataset for e in choice.evidence] == ["a", "b"]
    assert choice.to_json()["evidence"][1]["ci"] == [-0.8, -0.35]


def _pair(tmp_path):
    a = Profile(load_bundle(make_bundle(tmp_path / "a.safetensors", seed=1, layers=3, experts=8)))
    b = Profile(load_bundle(make_bundle(tmp_path / "b.safetensors", seed=2, layers=3, experts=8)))
    return a, b


def _energy_share_loop(source: Profile, target: Profile, r: int) -> float:
    """retained_energy of source's top-r mass mask on target, by plain loops (ties: lower id)."""
    energy = np.asarray(target.bundle.get("energy_sum"), dtype=np.float64)
    prob = np.asarray(source.bundle.prob_sum, dtype=np.float64).sum(axis=0)
    shares = []
    for layer in range(energy.shape[1]):
        ranked = sorted(range(energy.shape[2]), key=lambda e: (-prob[layer, e], e))[:r]
        whole = sum(energy[i, layer, e] for i in range(energy.shape[0]) for e in range(8))
        kept = sum(energy[i, layer, e] for i in range(energy.shape[0]) for e in ranked)
        shares.append(kept / whole)
    return float(np.mean(shares))


def test_relative_scores_by_hand(tmp_path):
    a, b = _pair(tmp_path)
    r = 3
    ab, ba = relative_scores("retained_energy", a, b, r)
    assert ab == pytest.approx(_energy_share_loop(a, b, r) / _energy_share_loop(b, b, r))
    assert ba == pytest.approx(_energy_share_loop(b, a, r) / _energy_share_loop(a, a, r))
    # For relative retained mass the ratio is issue 15's number itself.
    rel = relative_scores("retained_mass_rel", a, b, r)
    mean = compare(a, b, r).mean
    assert rel == pytest.approx(
        (mean["retained_mass_rel_a_to_b"], mean["retained_mass_rel_b_to_a"])
    )
    assert relative_scores("retained_reap", a, b, r) == (None, None)  # no reap_sum in these


def test_verdict_uses_the_validated_predictor_and_says_so(tmp_path):
    a, b = _pair(tmp_path)
    comparison = compare(a, b, 3)
    plain = verdict(comparison)
    none = verdict_basis(PredictorChoice(None, evaluations=2, tested=2), a, b, 3)
    text = verdict(comparison, basis=none)
    assert text.startswith(plain) and "no predictor was validated among similar masks" in text
    assert is_safe(comparison, none) == is_safe(comparison)

    evidence = choose_predictor(
        [_evaluation("eval_a", {"retained_energy": _test(-0.7, -0.9, -0.4)})]
    ).evidence
    chosen = PredictorChoice("retained_energy", evidence, 1, 1)
    basis = verdict_basis(chosen, a, b, 3)
    text = verdict(comparison, basis=basis)
    assert "by retained_energy" in text and "retained_energy is the best-validated" in text
    assert f"{basis.a_to_b:.1%}" in text
    assert basis.to_json()["used"] == "retained_energy"
    # The call follows the predictor's scores, not relative retained mass.
    for scores in ((0.96, 0.5), (0.5, 0.5), (0.97, 0.99)):
        forced = VerdictBasis(chosen, *scores)
        safe = any(s >= SAFE_SURROGATE_MASS for s in scores)
        assert is_safe(comparison, forced) is safe
        words = verdict(comparison, basis=forced)
        assert ("not a safe surrogate" in words) is (not safe)
        if all(s >= SAFE_SURROGATE_MASS for s in scores):
            assert "interchangeable" in words

    # Validated, but the bundles lack the statistic: back to relative retained mass, said.
    lacking = verdict_basis(PredictorChoice("retained_reap", evidence, 1, 1), a, b, 3)
    assert not lacking.usable and lacking.to_json()["used"] == "retained_mass_rel"
    text = verdict(comparison, basis=lacking)
    assert text.startswith(plain) and "lack what it needs" in text
