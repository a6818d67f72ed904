"""Design a calibration set: the mix of candidate datasets that serves the worst target best.

Objective (``min_target_relative_retained_mass``): for a top-r proxy mask M,

    f(M) = min over targets t of  mean over layers l of  Σ_{e∈M_l} P_t,l[e] / best_r(P_t,l)

where best_r is the mass of t's own top-r experts (:func:`core.metrics.retained_mass_rel`),
so f = 1 means every target keeps all it could with r experts per layer.

**A mix.** Taking n_c sequences of candidate c (Σ n_c = N) means taking n_c
typical sequences of c: each brings c's mean per-sequence sums S_c / N_c and
mean length T_c / N_c, where S_c = Σ_i prob_sum_c[i] and T_c, N_c are c's
tokens and sequences. The mix's signature is the token-weighted pool

    P_mix = Σ_c n_c · S_c / N_c  /  Σ_c n_c · T_c / N_c,

exactly what pooling the collected sums of such a set would give (a dataset
with longer sequences weighs more per sequence, as it does when collected).
Its mask is ``proxy_mask(P_mix, r)``. Weights are w_c = n_c / N; they may
ask for more sequences of c than its bundle holds (the recipe is a
distribution; collect more of c to follow it).

**Optimiser** (:func:`design_mix`): integer counts on the simplex. Starts are
every vertex (all N from one candidate, whose mask is that candidate's own),
and the uniform mix (N split as evenly as possible, remainders to the first
candidates); the best start is improved by moving δ sequences between two
candidates (δ = N/2, N/4, …, 1), taking the best move of each sweep while it
improves (min over targets first, the mean over targets second, so plateaus
of the discrete objective can be crossed). Because the starts include every
vertex and the uniform mix, the design is never worse than the best single
candidate or the uniform mix.

**A concrete set** (:func:`select_sequences`): greedy, one sequence at a
time, from all candidates' sequences, the one whose addition gives the best
objective of the pooled selection (same tie-breaks). Work bound: each of the
N steps scores at most ``POOL`` not yet chosen sequences (all of them when
fewer remain, else a random subset, seed 0), so the cost is N·POOL masks.

**Default N** (:func:`default_sequences`): the convergence count of
:func:`core.ablation.ablate` on the pooled candidates (shuffled with seed 0,
step max(1, pooled / 256), Jaccard to the final mask ≥ 0.95). When the pool
does not converge within its own sequences, N is the pooled sequence count;
when pooling would take more than ``POOL_BYTES`` of memory, N is the largest
of the candidates' own convergence counts (each ablated alone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core import __version__
from core import metrics as m
from core.ablation import DEFAULT_CONVERGENCE, ablate
from core.engine import Profile, check_compatible
from core.errors import LensError
from core.formats.bundle import Bundle
from core.formats.mask import Mask
from core.io.atomic import atomic_write_text
from core.textdata import TextSource

OBJECTIVE = "min_target_relative_retained_mass"
#: Sequences scored per greedy step at most.
POOL = 256
#: Largest pooled prob_sum (bytes) the default-N ablation builds in memory.
POOL_BYTES = 1 << 30
#: Most improving sweeps per step size in the mix search (a work bound; rarely reached).
MAX_SWEEPS = 64


@dataclass(frozen=True)
class Score:
    """The objective of one mask: the minimum over targets and each target's value."""

    value: float
    per_target: dict[str, float]

    @property
    def key(self) -> tuple[float, float]:
        """Order of preference: the worst target first, then the mean over targets."""
        return (self.value, float(np.mean(list(self.per_target.values()))))

    def to_json(self) -> dict:
        return {
            "value": m.to_jsonable(self.value),
            "per_target": {k: m.to_jsonable(v) for k, v in self.per_target.items()},
        }


class Objective:
    """f(mask) for fixed targets at budget r, with each target's best top-r mass cached."""

    def __init__(self, targets: list[Profile], r: int) -> None:
        self.names = [t.name for t in targets]
        self.r = int(r)
        self.prob = np.stack([t.prob for t in targets])  # [T, L, E]
        self.best = np.stack([m.best_retained_mass(t.prob, r) for t in targets])  # [T, L]

    def of_mask(self, mask: np.ndarray) -> Score:
        kept = np.where(mask[None], self.prob, 0.0).sum(axis=-1)  # [T, L]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(self.best > 0, kept / np.where(self.best > 0, self.best, 1.0), np.nan)
        per_target = {name: m.layer_mean(rel[t]) for t, name in enumerate(self.names)}
        values = [v for v in per_target.values() if v is not None]
        if not values:
            raise LensError("no target has routing mass; nothing to design for")
        return Score(min(values), {k: (np.nan if v is None else v) for k, v in per_target.items()})

    def of_signature(self, signature: np.ndarray) -> Score:
        return self.of_mask(m.proxy_mask(signature, self.r))


@dataclass(frozen=True)
class Candidate:
    """A candidate dataset reduced to what a mix needs: mean sums and length per sequence."""

    profile: Profile

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def sequences(self) -> int:
        return self.profile.bundle.num_samples

    @property
    def per_sequence_sum(self) -> np.ndarray:
        return self.profile.prob * (self.profile.tokens / self.sequences)  # S_c / N_c

    @property
    def per_sequence_tokens(self) -> float:
        return self.profile.tokens / self.sequences  # T_c / N_c


def mix_signature(candidates: list[Candidate], counts: np.ndarray) -> np.ndarray:
    """P_mix for ``counts[c]`` sequences of candidate c (see the module docstring)."""
    total = sum(float(n) * c.per_sequence_sum for c, n in zip(candidates, counts))
    tokens = sum(float(n) * c.per_sequence_tokens for c, n in zip(candidates, counts))
    return m.divide_by_tokens(np.asarray(total, dtype=np.float64), tokens)


def uniform_counts(num: int, sequences: int) -> np.ndarray:
    """N split as evenly as possible over ``num`` candidates (remainder to the first ones)."""
    counts = np.full(num, sequences // num, dtype=np.int64)
    counts[: sequences % num] += 1
    return counts


@dataclass(frozen=True)
class Mix:
    counts: np.ndarray
    score: Score

    def weights(self, names: list[str]) -> dict[str, float]:
        total = int(self.counts.sum())
        return {name: int(n) / total for name, n in zip(names, self.counts)}


def design_mix(candidates: list[Candidate], objective: Objective, sequences: int) -> Mix:
    """The integer mix of ``sequences`` sequences maximising the objective (see module doc)."""
    if sequences < 1:
        raise LensError(f"--sequences must be at least 1 (got {sequences})")
    num = len(candidates)

    def evaluate(counts: np.ndarray) -> Mix:
        return Mix(counts, objective.of_signature(mix_signature(candidates, counts)))

    starts = [evaluate(np.eye(num, dtype=np.int64)[c] * sequences) for c in range(num)]
    starts.append(evaluate(uniform_counts(num, sequences)))
    best = max(starts, key=lambda mix: mix.score.key)  # first of equals: a vertex
    step = max(1, sequences // 2)
    while True:
        for _ in range(MAX_SWEEPS):
            moves = []
            for giver in range(num):
                if best.counts[giver] < step:
                    continue
                for taker in range(num):
                    if taker == giver:
                        continue
                    counts = best.counts.copy()
                    counts[giver] -= step
                    counts[taker] += step
                    moves.append(evaluate(counts))
            improved = [mix for mix in moves if mix.score.key > best.score.key]
            if not improved:
                break
            best = max(improved, key=lambda mix: mix.score.key)
        if step == 1:
            return best
        step //= 2


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Chosen sequences: (candidate index, row in its bundle) in the order picked."""

    picks: list[tuple[int, int]]
    score: Score
    mask: np.ndarray  # [L, E] bool

    def example_ids(self, candidates: list[Candidate]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {c.name: [] for c in candidates}
        for c, row in self.picks:
            ids = candidates[c].profile.bundle.example_ids
            out[candidates[c].name].append(int(ids[row]))
        return {name: sorted(ids) for name, ids in out.items()}


def select_sequences(
    candidates: list[Candidate], objective: Objective, sequences: int, pool: int = POOL
) -> Selection:
    """Greedy selection of individual sequences under the objective (see module doc)."""
    owners = np.concatenate(
        [np.full(c.sequences, k, dtype=np.int64) for k, c in enumerate(candidates)]
    )
    rows = np.concatenate([np.arange(c.sequences, dtype=np.int64) for c in candidates])
    sequences = min(int(sequences), len(owners))
    bundles = [c.profile.bundle for c in candidates]
    shape = objective.prob.shape[1:]
    total = np.zeros(shape, dtype=np.float64)
    tokens = 0
    remaining = np.ones(len(owners), dtype=bool)
    rng = np.random.default_rng(0)
    picks: list[tuple[int, int]] = []
    r = objective.r
    for _ in range(sequences):
        open_ = np.flatnonzero(remaining)
        if len(open_) > pool:
            open_ = np.sort(rng.choice(open_, pool, replace=False))
        sums = np.stack(
            [np.asarray(bundles[owners[j]].prob_sum[rows[j]], dtype=np.float64) for j in open_]
        )
        lengths = np.array([int(bundles[owners[j]].token_count[rows[j]]) for j in open_])
        trial = (total[None] + sums) / np.maximum(tokens + lengths, 1)[:, None, None]
        # The choice may use an unstable partition (ties only blur the choice); the
        # reported score below is the exact proxy mask of the final selection.
        top = np.argpartition(-trial, r - 1, axis=-1)[..., :r]
        mask = np.zeros(trial.shape, dtype=bool)
        np.put_along_axis(mask, top, True, axis=-1)
        kept = np.einsum("ple,tle->ptl", mask, objective.prob)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = kept / np.where(objective.best > 0, objective.best, np.nan)[None]
        per_target = np.nanmean(rel, axis=-1)  # [P, T]
        keys = np.lexsort((-per_target.mean(axis=1), -per_target.min(axis=1)))
        choice = open_[keys[0]]
        remaining[choice] = False
        total += sums[keys[0]]
        tokens += int(lengths[keys[0]])
        picks.append((int(owners[choice]), int(rows[choice])))
    signature = m.divide_by_tokens(total, tokens)
    mask = m.proxy_mask(signature, r)
    return Selection(picks, objective.of_mask(mask), mask)


# --------------------------------------------------------------------------- default N


def default_sequences(candidates: list[Candidate], r: int) -> int:
    """The convergence count of the pooled candidates (see module doc for the fallbacks).

    The candidates are pooled in the order of their file names, not as given: the ablation
    shuffles the pool with a fixed seed, so the given order would otherwise change the
    answer (the same candidates listed differently gave 1,536 and 1,640 sequences).
    """
    bundles = sorted((c.profile.bundle for c in candidates), key=lambda b: Path(b.path).name)
    pooled_bytes = sum(b.prob_sum.nbytes for b in bundles)
    if pooled_bytes <= POOL_BYTES:
        pooled = _pooled_bundle(bundles)
        count = _converged_at(Profile(pooled), r)
        return count if count is not None else pooled.num_samples
    counts = [_converged_at(c.profile, r) for c in candidates]
    known = [c for c in counts if c is not None]
    return max(known) if known else sum(b.num_samples for b in bundles)


def _converged_at(profile: Profile, r: int) -> int | None:
    samples = profile.bundle.num_samples
    step = max(1, samples // 256)
    if samples < 2 * step:
        return None
    return ablate(profile, r, step, seed=0).converged_at(DEFAULT_CONVERGENCE)


def _pooled_bundle(bundles: list[Bundle]) -> Bundle:
    tensors = {
        "prob_sum": np.concatenate([np.asarray(b.prob_sum) for b in bundles]),
        "token_count": np.concatenate([np.asarray(b.token_count) for b in bundles]),
    }
    tensors["example_ids"] = np.arange(len(tensors["token_count"]), dtype=np.int64)
    return Bundle(
        path=Path("pooled-candidates"), metadata=dict(bundles[0].metadata), tensors=tensors
    )


# --------------------------------------------------------------------------- the whole design


@dataclass(frozen=True)
class Design:
    candidates: list[Candidate]
    targets: list[Profile]
    r: int
    sequences: int
    mix: Mix
    selection: Selection
    baselines: dict[str, Score]

    def to_json(self) -> dict:
        names = [c.name for c in self.candidates]
        return {
            "r": self.r,
            "sequences": self.sequences,
            "objective": OBJECTIVE,
            "design": {"weights": self.mix.weights(names), **self.mix.score.to_json()},
            "selection": {
                "example_ids": self.selection.example_ids(self.candidates),
                **self.selection.score.to_json(),
            },
            "baselines": {name: score.to_json() for name, score in self.baselines.items()},
        }

    def selection_mask(self) -> Mask:
        """The selection's proxy mask as a mask file (criterion ``mass`` on the chosen set)."""
        bundles = [c.profile.bundle for c in self.candidates]
        top_ks = {b.top_k for b in bundles if b.top_k}
        return Mask(
            model=bundles[0].model,
            num_experts=bundles[0].num_experts,
            criterion="mass",
            sources=[str(b.path) for b in bundles],
            layers=m.kept_experts(self.selection.mask),
            top_k=top_ks.pop() if len(top_ks) == 1 else None,
            budget={"kind": "per_layer", "r": self.r},
            extra={
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "tool_version": __version__,
                "design": {
                    "objective": OBJECTIVE,
                    "targets": [t.name for t in self.targets],
                    "value": m.to_jsonable(self.selection.score.value),
                },
            },
        )


def _check_names(profiles: list[Profile], what: str) -> None:
    seen: dict[str, Path] = {}
    for p in profiles:
        if p.name in seen and seen[p.name] != p.bundle.path:
            raise LensError(
                f"{p.bundle.path}: {what} name {p.name!r} is also {seen[p.name]}; "
                "rename one file (results are keyed by file name)"
            )
        seen[p.name] = p.bundle.path


def design(
    candidates: list[Profile], targets: list[Profile], r: int, sequences: int | None = None
) -> Design:
    """Mix weights, a concrete sequence list and the baselines, all under one objective."""
    if not candidates:
        raise LensError("give at least one candidate bundle (--candidates)")
    if not targets:
        raise LensError("give at least one target bundle (--targets)")
    check_compatible(candidates + targets)
    m.check_budget(r, candidates[0].num_experts, "--r")
    _check_names(candidates, "candidate")
    _check_names(targets, "target")
    if len({c.name for c in candidates}) != len(candidates):
        raise LensError("a candidate is given twice")
    pool = [Candidate(p) for p in candidates]
    objective = Objective(targets, r)
    if sequences is None:
        sequences = default_sequences(pool, r)
    mix = design_mix(pool, objective, sequences)
    selection = select_sequences(pool, objective, sequences)
    # Baselines through the same mix signature as the design's starts, so the
    # comparison is exact (a vertex's signature is the candidate's own P up to rounding).
    vertices = np.eye(len(pool), dtype=np.int64) * sequences
    baselines = {
        c.name: objective.of_signature(mix_signature(pool, vertices[k])) for k, c in enumerate(pool)
    }
    baselines["uniform"] = objective.of_signature(
        mix_signature(pool, uniform_counts(len(pool), sequences))
    )
    return Design(pool, targets, int(r), int(sequences), mix, selection, baselines)


def write_calibration(
    path: str | Path, result: Design, data: list[str | Path], text_field: str = "text"
) -> int:
    """Write the selection as a calibration JSONL: ``{"text", "dataset", "example_id"}`` per line.

    ``data[c]`` is candidate c's data file (the order of the candidates); texts
    are looked up lazily by example id (:class:`core.textdata.TextSource`) and
    the file is written atomically. Lines follow the order of selection.
    """
    if len(data) != len(result.candidates):
        raise LensError(
            f"one data file per candidate is needed ({len(result.candidates)} candidates, "
            f"{len(data)} data files)"
        )
    wanted: dict[int, list[int]] = {}
    for c, row in result.selection.picks:
        wanted.setdefault(c, []).append(int(result.candidates[c].profile.bundle.example_ids[row]))
    texts = {c: TextSource(data[c], text_field).texts(ids) for c, ids in wanted.items()}
    lines = []
    for c, row in result.selection.picks:
        example_id = int(result.candidates[c].profile.bundle.example_ids[row])
        text = texts[c].get(example_id)
        if text is None:
            raise LensError(
                f"{data[c]}: has no sample {example_id}, which "
                f"{result.candidates[c].profile.bundle.path} holds; is this its data file?"
            )
        record = {"text": text, "dataset": result.candidates[c].name, "example_id": example_id}
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    atomic_write_text(path, "".join(lines))
    return len(lines)
