"""The session's evidence: one predicted-vs-actual report for the evaluations and bundles loaded.

The Predict view shows it and the Compare verdict chooses its predictor from
it (:func:`core.predictor_choice.choose_predictor`), so both must read the same
report, and its rank tests (thousands of bootstrap replicates per predictor
and group) should run once per set of loaded files, not once per view or key
press. The cache is keyed by the identity of the loaded objects (the app
replaces, never mutates, them) and holds them, so an id is never reused
while its entry lives. Thread-safe: the Compare view computes in a worker.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from core.engine import Profile
from core.errors import LensError
from core.formats.evaluation import Evaluation
from core.predict import PredictionReport, matching_profile, predict_vs_actual
from core.predictor_choice import PredictorChoice, choose_predictor

_LOCK = threading.Lock()
_CACHE: dict[tuple, SessionEvidence] = {}
_HELD: dict[tuple, tuple] = {}  # the keyed objects, alive while their entry is
#: Sets of loaded files remembered (a new bundle or evaluation makes a new set).
_KEEP = 4


@dataclass(frozen=True)
class SessionEvidence:
    """The report over the evaluations whose data has a loaded bundle, or why there is none."""

    evaluations: tuple[Evaluation, ...]  # all loaded
    paired: tuple[Evaluation, ...]  # those with a loaded bundle of their data
    report: PredictionReport | None
    error: str | None = None  # the engine's LensError line, if it refused

    @property
    def choice(self) -> PredictorChoice:
        """The predictor the Compare verdict may use (none validated without a report)."""
        tests = [] if self.report is None else self.report.evaluations
        return choose_predictor(tests, len(self.evaluations))


def _key(evaluations: Sequence[Evaluation], profiles: Sequence[Profile]) -> tuple:
    return (tuple(id(e) for e in evaluations), tuple(id(p) for p in profiles))


def cached(
    evaluations: Sequence[Evaluation], profiles: Sequence[Profile]
) -> SessionEvidence | None:
    """The evidence if it is known without computing (always when nothing is paired)."""
    paired = tuple(ev for ev in evaluations if matching_profile(ev, profiles) is not None)
    if not paired:
        return SessionEvidence(tuple(evaluations), (), None)
    with _LOCK:
        return _CACHE.get(_key(evaluations, profiles))


def session_evidence(
    evaluations: Sequence[Evaluation], profiles: Sequence[Profile]
) -> SessionEvidence:
    """The evidence for these loaded files: from the cache, or computed now (slow)."""
    known = cached(evaluations, profiles)
    if known is not None:
        return known
    paired = tuple(ev for ev in evaluations if matching_profile(ev, profiles) is not None)
    try:
        evidence = SessionEvidence(tuple(evaluations), paired, predict_vs_actual(paired, profiles))
    except LensError as exc:
        evidence = SessionEvidence(tuple(evaluations), paired, None, str(exc))
    with _LOCK:
        if len(_CACHE) >= _KEEP:
            _CACHE.pop(next(iter(_CACHE)))
        # The value holds the keyed objects (the report's profiles too), so ids stay unique.
        _CACHE[_key(evaluations, profiles)] = evidence
        _HELD[_key(evaluations, profiles)] = (tuple(evaluations), tuple(profiles))
        for stale in set(_HELD) - set(_CACHE):
            del _HELD[stale]
    return evidence
