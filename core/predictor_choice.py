"""Which predictor may the Compare verdict trust? Chosen from the evaluations loaded, or none.

The verdict "A is a safe surrogate for B" is a prediction: that pruning with
A's mask hurts B little. Issue 15's rule makes it from relative retained mass.
Another predictor (:mod:`core.predictors`) may order masks better, but only
the evaluations (``lens evaluate``) can say so, and only among the masks the
verdict is about: masks that keep *similar* experts, calibrated on data of the
evaluated set's own language and domain (the ``same_data`` group of
:func:`core.predict.mask_groups`). Across languages every predictor orders
masks; that says nothing about the choice between similar calibration sets.

The rule (docs/formats.md §Predictor behind the verdict):

- a predictor is **validated** when, in every evaluation that tests it within
  ``same_data`` (at least 3 masks, an interval), its bootstrap interval of
  ρ(predictor, loss increase) lies wholly below 0 — more predicted, less loss
  increase — and there is at least one such evaluation. "Every", not "any": the
  verdict is applied to datasets that may be none of the evaluated ones, so a
  predictor that works on one evaluated set and is unresolved (or reversed) on
  another has not shown that it carries over;
- among validated predictors the **strongest evidence** is the one whose
  weakest interval (the upper bound closest to 0, over those evaluations)
  lies furthest below 0; ties go to the more negative mean ρ, then to report
  order (:data:`core.predictors.PREDICTORS`, the paper's first);
- the verdict then scores A's top-r mask on B by that predictor *relative to
  B's own top-r mask on B* (:func:`relative_scores`) and applies issue 15's
  threshold (≥ 0.95: a safe surrogate). For ``retained_mass_rel`` this is
  exactly issue 15's number, so the rule is one rule whichever predictor wins.

Pure and numpy only: the choice is a function of :class:`EvaluationTests`,
so tests build them by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.engine import SAFE_SURROGATE_MASS, Profile
from core.formats.evaluation import Evaluation
from core.predict import EvaluationTests, matching_profile, predict_vs_actual
from core.predictors import PREDICTORS, predictor_values
from core.rank_tests import MIN_POINTS, RankTest

#: The within-group notion the validation uses (see :func:`core.predict.mask_groups`).
GROUP = "same_data"
#: The predictor the verdict falls back on, issue 15's.
FALLBACK = "retained_mass_rel"


@dataclass(frozen=True)
class Evidence:
    """One predictor's within-group rank test in one evaluation."""

    evaluation: str
    dataset: str
    test: RankTest

    def to_json(self) -> dict:
        return {"evaluation": self.evaluation, "dataset": self.dataset, **self.test.to_json()}

    def text(self) -> str:
        """``ρ = −0.62 [−0.85, −0.31] over 24 similar masks on wiki_en``."""
        t = self.test
        ci = "" if t.ci is None else f" [{t.ci[0]:+.2f}, {t.ci[1]:+.2f}]"
        rho = "—" if t.spearman is None else f"{t.spearman:+.2f}"
        return f"ρ = {rho}{ci} over {t.n} similar masks on {self.dataset}"


@dataclass(frozen=True)
class PredictorChoice:
    """The predictor the verdict uses (``name``; None = none validated) and why.

    ``evidence`` is the chosen predictor's tests (empty when none is
    validated); ``evaluations`` counts the evaluations loaded and ``tested``
    those with a ``same_data`` test (≥ 3 similar masks and an interval).
    """

    name: str | None
    evidence: tuple[Evidence, ...] = ()
    evaluations: int = 0
    tested: int = 0

    @property
    def validated(self) -> bool:
        return self.name is not None

    def reason(self) -> str:
        """One clause, in words, saying which predictor the verdict rests on and why."""
        if self.name is not None:
            shown = "; ".join(e.text() for e in self.evidence)
            return f"{self.name} is the best-validated predictor among similar masks ({shown})"
        if not self.evaluations:
            why = "no evaluation loaded"
        elif not self.tested:
            why = f"no evaluation has {MIN_POINTS}+ masks from its own data's group"
        else:
            why = f"no ρ interval below 0 in all {self.tested} evaluation(s) testing them"
        return f"no predictor was validated among similar masks ({why}): relative retained mass decides"

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "validated": self.validated,
            "group": GROUP,
            "evidence": [e.to_json() for e in self.evidence],
            "evaluations": self.evaluations,
            "tested": self.tested,
            "reason": self.reason(),
        }


def choose_predictor(
    tests: Sequence[EvaluationTests], evaluations: int | None = None
) -> PredictorChoice:
    """The best-validated predictor of ``tests`` (the rule in the module docstring).

    ``evaluations`` is how many evaluations were loaded (default: as many as
    ``tests``); those without tests (no bundle of their data) count there only.
    """
    loaded = len(tests) if evaluations is None else evaluations
    evidence: dict[str, list[Evidence]] = {}
    tested = set()
    for ev_tests in tests:
        for predictor in ev_tests.predictors:
            test = predictor.groups.get(GROUP)
            if test is None or test.ci is None or test.spearman is None:
                continue
            tested.add(ev_tests.evaluation)
            evidence.setdefault(predictor.name, []).append(
                Evidence(ev_tests.evaluation, ev_tests.dataset, test)
            )
    order = {name: i for i, name in enumerate(PREDICTORS)}
    candidates = []
    for name, found in evidence.items():
        uppers = [e.test.ci[1] for e in found]  # type: ignore[index]
        if max(uppers) < 0:
            mean_rho = float(np.mean([e.test.spearman for e in found]))
            candidates.append((max(uppers), mean_rho, order.get(name, len(order)), name))
    if not candidates:
        return PredictorChoice(None, (), loaded, len(tested))
    best = min(candidates)[-1]
    return PredictorChoice(best, tuple(evidence[best]), loaded, len(tested))


def evidence_choice(
    evaluations: Sequence[Evaluation], profiles: Sequence[Profile]
) -> PredictorChoice:
    """:func:`choose_predictor` over the evaluations whose data has a bundle among ``profiles``.

    The rank tests are :func:`core.predict.predict_vs_actual`'s defaults (2000
    replicates and permutations, seed 0), so the choice is the one the
    Predict view and ``lens predict-vs-actual`` show.
    """
    paired = [ev for ev in evaluations if matching_profile(ev, profiles) is not None]
    if not paired:
        return PredictorChoice(None, (), len(evaluations), 0)
    return choose_predictor(predict_vs_actual(paired, profiles).evaluations, len(evaluations))


@dataclass(frozen=True)
class VerdictBasis:
    """What the Compare verdict rests on: the choice, and its predictor's relative scores.

    ``a_to_b`` = predictor(A's top-r mask on B) / predictor(B's top-r mask on B)
    (and the reverse); None when the bundles lack the predictor's statistic.
    """

    choice: PredictorChoice
    a_to_b: float | None = None
    b_to_a: float | None = None

    @property
    def usable(self) -> bool:
        """Whether the verdict can use the chosen predictor on these bundles."""
        return self.choice.validated and None not in (self.a_to_b, self.b_to_a)

    def to_json(self) -> dict:
        return {
            **self.choice.to_json(),
            "used": self.choice.name if self.usable else FALLBACK,
            "relative_a_to_b": self.a_to_b,
            "relative_b_to_a": self.b_to_a,
            "threshold": SAFE_SURROGATE_MASS,
        }


def relative_scores(name: str, a: Profile, b: Profile, r: int) -> tuple[float | None, float | None]:
    """Predictor ``name`` of A's top-r mask on B over that of B's own top-r mask (and reverse).

    B's own proxy mask is what calibrating on B itself keeps, so 1.0 = A's
    mask does as well on B as B's own by this predictor. None when either
    value is missing or the denominator is not positive.
    """

    def ratio(source: Profile, target: Profile) -> float | None:
        value = predictor_values(source.mask(r), target).get(name)
        own = predictor_values(target.mask(r), target).get(name)
        if value is None or own is None or not own > 0:
            return None
        return float(value / own)

    return ratio(a, b), ratio(b, a)


def verdict_basis(choice: PredictorChoice, a: Profile, b: Profile, r: int) -> VerdictBasis:
    """The basis of A vs B's verdict at r under ``choice`` (scores only for a validated one)."""
    if choice.name is None:
        return VerdictBasis(choice)
    ab, ba = relative_scores(choice.name, a, b, r)
    return VerdictBasis(choice, ab, ba)
