"""The metric engine: cached dataset signatures and the docs/formats.md §JSON output reports.

A :class:`Profile` reads a bundle's per-sample sums once and keeps the
dataset-level signatures P_l and E_l (``[L, E]`` each, a few kB). Everything a
user changes afterwards (r, τ, which pair is compared) is recomputed from
those cached signatures in well under a millisecond, which is what lets the
TUI recompute on every keypress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core import metrics as m
from core.errors import LensError
from core.formats.bundle import Bundle, load_bundle

if TYPE_CHECKING:
    from core.predictor_choice import VerdictBasis
    from core.uncertainty import Difference
from core.model_names import model_identity


@dataclass(eq=False)
class Profile:
    """A bundle plus its whole-dataset signatures, computed once on first use."""

    bundle: Bundle
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path, *, defer_value_checks: bool = False) -> Profile:
        """The bundle at ``path``; ``defer_value_checks`` checks its values on first read.

        Deferring is for opening many bundles of which few are used (the app):
        see :class:`core.formats.bundle.CheckedOnFirstRead`.
        """
        return cls(load_bundle(path, defer_value_checks=defer_value_checks))

    @property
    def has_signature(self) -> bool:
        """Whether P_l is computed already (so reading it costs nothing)."""
        return "prob" in self.__dict__

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def num_layers(self) -> int:
        return self.bundle.num_layers

    @property
    def num_experts(self) -> int:
        return self.bundle.num_experts

    @cached_property
    def tokens(self) -> int:
        return self.bundle.num_tokens

    @cached_property
    def prob(self) -> np.ndarray:
        """P_l(S) over all samples, ``[L, E]`` float64."""
        return m.divide_by_tokens(self.bundle.total("prob_sum"), self.tokens)

    @cached_property
    def energy(self) -> np.ndarray | None:
        """E_l(S) over all samples, or ``None`` if the bundle has no ``energy_sum``."""
        if not self.bundle.has("energy_sum"):
            return None
        return m.divide_by_tokens(self.bundle.total("energy_sum"), self.tokens)

    def univariate(self, tau: float = m.DEFAULT_TAU) -> dict[str, np.ndarray]:
        key = ("univariate", float(tau))
        if key not in self._cache:
            self._cache[key] = m.univariate(self.prob, tau)
        return self._cache[key]

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key for this bundle (derived arrays other modules reuse)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def mask(self, r: int) -> np.ndarray:
        """The paper's proxy mask M_l(S; r) as a boolean ``[L, E]`` array."""
        m.check_budget(r, self.num_experts, str(self.bundle.path))
        key = ("mask", int(r))
        if key not in self._cache:
            self._cache[key] = m.proxy_mask(self.prob, int(r))
        return self._cache[key]


def check_compatible(profiles: list[Profile]) -> None:
    """Refuse to compare bundles of different models.

    Equal layer and expert counts are not enough: two models of one shape
    (two fine-tunes, or two sizes that share L and E) route differently, and
    their numbers side by side would look meaningful while saying nothing. The
    recorded model names must name the same model (:func:`model_identity`).
    """
    first = profiles[0]
    for other in profiles[1:]:
        if (other.num_layers, other.num_experts) != (first.num_layers, first.num_experts):
            raise LensError(
                f"{other.bundle.path}: has L={other.num_layers}, E={other.num_experts} but "
                f"{first.bundle.path} has L={first.num_layers}, E={first.num_experts}; "
                "bundles must come from the same model"
            )
        if model_identity(other.bundle.model) != model_identity(first.bundle.model):
            raise LensError(
                f"{other.bundle.path}: is of model {other.bundle.model!r} but {first.bundle.path} "
                f"is of {first.bundle.model!r}; bundles must come from the same model"
            )


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class StatsReport:
    profile: Profile
    tau: float
    layers: dict[str, np.ndarray]

    @property
    def mean(self) -> dict[str, float | None]:
        return {k: m.layer_mean(self.layers[k]) for k in m.UNIVARIATE_KEYS}

    def to_json(self) -> dict:
        return {
            "bundle": self.profile.bundle.summary(),
            "tau": self.tau,
            "layers": m.per_layer_rows(self.layers, m.UNIVARIATE_KEYS, self.profile.num_layers),
            "mean": self.mean,
        }


def stats(profile: Profile, tau: float = m.DEFAULT_TAU) -> StatsReport:
    return StatsReport(profile, float(tau), profile.univariate(tau))


# --------------------------------------------------------------------------- compare

#: Which dataset of a comparison a univariate figure belongs to.
Side = Literal["a", "b"]


@dataclass(frozen=True)
class Comparison:
    """Every bivariate metric for one pair at budget r, per layer ``[L]``."""

    a: Profile
    b: Profile
    r: int
    tau: float
    layers: dict[str, np.ndarray | None]

    @property
    def mean(self) -> dict[str, float | None]:
        return {k: m.layer_mean(self.layers[k]) for k in m.COMPARE_KEYS}

    @property
    def univariate_a(self) -> dict[str, np.ndarray]:
        return self.a.univariate(self.tau)

    @property
    def univariate_b(self) -> dict[str, np.ndarray]:
        return self.b.univariate(self.tau)

    @property
    def num_layers(self) -> int:
        return self.a.num_layers

    def univariate(self, side: Side) -> dict[str, np.ndarray]:
        """Side "a" or "b"'s univariate metrics per layer (views pick the side by name)."""
        return self.univariate_a if side == "a" else self.univariate_b

    def univariate_mean(self, side: Side) -> dict[str, float | None]:
        """Side "a" or "b"'s univariate metrics as means over layers, NaNs skipped."""
        layers = self.univariate(side)
        return {k: m.layer_mean(layers[k]) for k in m.UNIVARIATE_KEYS}

    def values(self, key: str, side: Side | None = None) -> np.ndarray | None:
        """One metric per layer as the engine's array (``None`` when not measured).

        A bivariate key (``side=None``) or a univariate key of side "a" / "b";
        a univariate array is the profile's own, the same object at every r.
        """
        return self.layers[key] if side is None else self.univariate(side)[key]

    def series(self, key: str, side: Side | None = None) -> list[float | None]:
        """One metric per layer as plain floats, NaN and missing as ``None``.

        A bivariate key (``side=None``) or a univariate key of side "a" / "b".
        The values are exactly those of ``to_json()["layers"]``, so a view built
        on this shows what ``lens compare --json`` prints, without the dictionaries.
        """
        values = self.values(key, side)
        if values is None:
            return [None] * self.num_layers
        return [m.to_jsonable(v) for v in values]

    def to_json(self) -> dict:
        num_layers = self.a.num_layers
        rows_a = m.per_layer_rows(self.univariate_a, m.UNIVARIATE_KEYS, num_layers)
        rows_b = m.per_layer_rows(self.univariate_b, m.UNIVARIATE_KEYS, num_layers)
        rows = m.per_layer_rows(self.layers, m.COMPARE_KEYS, num_layers)
        layers = []
        for row, ua, ub in zip(rows, rows_a, rows_b):
            ua.pop("layer")
            ub.pop("layer")
            layers.append({"layer": row.pop("layer"), "a": ua, "b": ub, **row})
        return {
            "a": self.a.bundle.summary(),
            "b": self.b.bundle.summary(),
            "r": self.r,
            "tau": self.tau,
            "layers": layers,
            "mean": self.mean,
            "univariate_mean": {"a": self.univariate_mean("a"), "b": self.univariate_mean("b")},
        }


def compare(a: Profile, b: Profile, r: int, tau: float = m.DEFAULT_TAU) -> Comparison:
    """All bivariate metrics (docs/formats.md §Metrics) of A vs B at budget r, from the cached signatures."""
    check_compatible([a, b])
    mask_a, mask_b = a.mask(r), b.mask(r)
    layers: dict[str, np.ndarray | None] = {
        "js_divergence": m.js_divergence(a.prob, b.prob),
        "jaccard": m.jaccard(mask_a, mask_b),
        "pearson_energy": m.pearson(a.energy, b.energy),
        "retained_mass_a_to_b": m.retained_mass(mask_a, b.prob),
        "retained_mass_b_to_a": m.retained_mass(mask_b, a.prob),
        "retained_mass_rel_a_to_b": m.retained_mass_rel(mask_a, b.prob, r),
        "retained_mass_rel_b_to_a": m.retained_mass_rel(mask_b, a.prob, r),
    }
    return Comparison(a, b, int(r), float(tau), layers)


SAFE_SURROGATE_MASS = 0.95
#: Below this p-value the permutation test calls a difference real rather than resampling noise.
NOISE_ALPHA = 0.05


def is_safe(comparison: Comparison, basis: VerdictBasis | None = None) -> bool:
    """Whether either side is a safe surrogate for the other (score ≥ 95 %).

    The score is relative retained mass, or, with a ``basis`` whose validated
    predictor these bundles support, that predictor relative to the target's own
    mask (:mod:`core.predictor_choice`).
    """
    return any(v is not None and v >= SAFE_SURROGATE_MASS for v in _scores(comparison, basis))


def _scores(
    comparison: Comparison, basis: VerdictBasis | None
) -> tuple[float | None, float | None]:
    """(A→B, B→A) scores the surrogate call is made on (see :func:`is_safe`)."""
    if basis is not None and basis.usable:
        return basis.a_to_b, basis.b_to_a
    mean = comparison.mean
    return mean["retained_mass_rel_a_to_b"], mean["retained_mass_rel_b_to_a"]


def verdict(
    comparison: Comparison,
    difference: Difference | None = None,
    basis: VerdictBasis | None = None,
) -> str:
    """A one-sentence reading of the whole-model figures.

    The surrogate call uses the *relative* retained mass (docs/formats.md §Relative retained mass): the
    paper's absolute 95 % cannot be reached at small r even by identical data,
    because a set's own top-r share is below 1. The absolute value is shown
    beside it. With a permutation test (``difference``), the sentence first says
    whether A and B differ beyond what resampling the same data gives. With a
    ``basis`` (:func:`core.predictor_choice.verdict_basis`), the call uses the
    predictor validated by the loaded evaluations when there is one, and the
    sentence ends by saying which predictor it rests on and why.
    """
    mean = comparison.mean
    a, b, r = comparison.a.name, comparison.b.name, comparison.r
    ab, ba = mean["retained_mass_a_to_b"], mean["retained_mass_b_to_a"]
    rel_ab, rel_ba = mean["retained_mass_rel_a_to_b"], mean["retained_mass_rel_b_to_a"]
    if None in (ab, ba, rel_ab, rel_ba):
        return "not enough data for a verdict"
    assert ab is not None and ba is not None and rel_ab is not None and rel_ba is not None
    if basis is not None and basis.usable:
        mass = _predictor_sentence(comparison, basis, rel_ab, rel_ba)
    else:
        mass = _mass_sentence(a, b, r, ab, ba, rel_ab, rel_ba)
    if basis is not None:
        mass = f"{mass}; {_basis_sentence(basis)}"
    if difference is None:
        return mass
    return f"{_noise_sentence(comparison, difference)}; {mass}"


def _mass_sentence(
    a: str, b: str, r: int, ab: float, ba: float, rel_ab: float, rel_ba: float
) -> str:
    """Issue 15's call: relative retained mass ≥ 95 % is a safe surrogate."""
    safe_ab, safe_ba = rel_ab >= SAFE_SURROGATE_MASS, rel_ba >= SAFE_SURROGATE_MASS
    if safe_ab and safe_ba:
        return (
            f"{a} and {b} are interchangeable at r={r}: each is a safe surrogate for the other "
            f"({rel_ab:.1%} / {rel_ba:.1%} of the attainable top-{r} mass kept; "
            f"{ab:.1%} / {ba:.1%} absolute)"
        )
    if safe_ab:
        return _surrogate_sentence(a, b, r, rel_ab, ab)
    if safe_ba:
        return _surrogate_sentence(b, a, r, rel_ba, ba)
    return (
        f"calibrating on {a} keeps {rel_ab:.1%} of {b}'s attainable top-{r} mass "
        f"({ab:.1%} absolute): not a safe surrogate"
    )


def _predictor_sentence(
    comparison: Comparison, basis: VerdictBasis, rel_ab: float, rel_ba: float
) -> str:
    """The same call made on the validated predictor, relative retained mass beside it."""
    a, b, r = comparison.a.name, comparison.b.name, comparison.r
    name = basis.choice.name
    x, y = basis.a_to_b, basis.b_to_a
    assert x is not None and y is not None
    safe_ab, safe_ba = x >= SAFE_SURROGATE_MASS, y >= SAFE_SURROGATE_MASS
    if safe_ab and safe_ba:
        return (
            f"{a} and {b} are interchangeable at r={r} by {name}: each one's top-{r} mask scores "
            f"{x:.1%} / {y:.1%} of the other's own (relative retained mass "
            f"{rel_ab:.1%} / {rel_ba:.1%})"
        )
    if safe_ab or safe_ba:
        src, dst, score, rel = (a, b, x, rel_ab) if safe_ab else (b, a, y, rel_ba)
        return (
            f"{src} is a safe surrogate for {dst} at r={r} by {name}: its top-{r} mask scores "
            f"{score:.1%} of {dst}'s own on {dst} (relative retained mass {rel:.1%})"
        )
    return (
        f"calibrating on {a} scores {x:.1%} of {b}'s own top-{r} mask on {b} by {name} "
        f"(relative retained mass {rel_ab:.1%}): not a safe surrogate"
    )


def _basis_sentence(basis: VerdictBasis) -> str:
    choice = basis.choice
    if choice.validated and not basis.usable:
        return (
            f"{choice.name} is validated among similar masks but these bundles lack what it "
            "needs: relative retained mass decides"
        )
    return choice.reason()


def _surrogate_sentence(a: str, b: str, r: int, rel: float, absolute: float) -> str:
    return (
        f"{a} is a safe surrogate for {b} at r={r}: keeps {rel:.1%} of its attainable "
        f"top-{r} mass ({absolute:.1%} absolute)"
    )


def _noise_sentence(comparison: Comparison, difference: Difference) -> str:
    a, b = comparison.a.name, comparison.b.name
    js = comparison.mean["js_divergence"]
    js_text = "n/a" if js is None else f"{js:.3g}"
    p_js, p_jac = difference.js_divergence_p, difference.jaccard_p
    if p_js >= NOISE_ALPHA and p_jac >= NOISE_ALPHA:
        return (
            f"{a} and {b} route alike: their difference (JS {js_text}) is within resampling "
            f"noise (p = {p_js:.2g})"
        )
    return (
        f"{a} and {b} route differently: their difference (JS {js_text}) is beyond resampling "
        f"noise (p = {p_js:.2g}; Jaccard p = {p_jac:.2g})"
    )


# --------------------------------------------------------------------------- one layer


@dataclass(frozen=True)
class LayerDistribution:
    """One layer's expert distributions P_l(A), P_l(B) and both top-r proxy masks.

    What a per-layer plot needs: arrays of length E, the masks as booleans.
    """

    layer: int
    r: int
    prob_a: np.ndarray  # [E] float64
    prob_b: np.ndarray  # [E] float64
    kept_a: np.ndarray  # [E] bool, M_l(A; r)
    kept_b: np.ndarray  # [E] bool, M_l(B; r)


def layer_distribution(a: Profile, b: Profile, layer: int, r: int) -> LayerDistribution:
    """P_l(A) vs P_l(B) and the experts each side's mask keeps at budget r, for layer ``layer``."""
    check_compatible([a, b])
    if not 0 <= int(layer) < a.num_layers:
        raise LensError(
            f"{a.bundle.path}: layer {layer} is outside 0..{a.num_layers - 1} (the model's MoE layers)"
        )
    layer = int(layer)
    return LayerDistribution(
        layer=layer,
        r=int(r),
        prob_a=a.prob[layer].copy(),
        prob_b=b.prob[layer].copy(),
        kept_a=a.mask(r)[layer].copy(),
        kept_b=b.mask(r)[layer].copy(),
    )
