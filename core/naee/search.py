"""NAEE's search for one layer: exact enumeration of kept sets, or greedy backward elimination.

Objective of a kept set S (lower is better), over the layer's non-padding
calibration tokens t:

    err(S) = Σ_t ‖Z_t − Ẑ_t(S)‖²,   Z_t = Σ_j w_tj · y_{i_tj}(x_t),   Ẑ_t(S) likewise

with (w, i) the routing the model computes (Z) or the family's
``masked_routing`` with the experts outside S at −inf (Ẑ), and y_e(x) the
output of expert e alone, from the experts module's own forward with unit
weight. Expert_Sparsity sums per-batch Frobenius norms ‖Z − Ẑ‖_F; the sum of
squares over tokens is the batch-independent form of the same criterion
(the batching plan cannot change the answer).

Exact: every S of size r when C(E, r) ≤ ``max_subsets`` (default 5,000),
scored in batches of subsets. Beyond that, greedy backward elimination: from
all E experts, repeatedly drop the expert whose removal gives the lowest
err, until r remain. Its work is bounded by Σ_{s=r+1..E} s = (E(E+1) −
r(r+1)) / 2 scored subsets per layer (492 for E = 32, r = 8; 7,728 for
E = 128, r = 32), each costing O(tokens · (E + k·H)).

The per-expert outputs y of all tokens are computed once per layer and
cached when they fit in ``CACHE_ELEMENTS``; otherwise they are recomputed per
token chunk at each evaluation (slower, bounded memory).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import LensError
from core.families.layers import MoeLayer

#: Enumerate every kept set when there are at most this many per layer.
MAX_SUBSETS = 5000
#: Cache y [T, E, H] (float32 elements) up to this size (1 GiB); beyond, recompute per chunk.
CACHE_ELEMENTS = 2**28
#: Elements of one token chunk's y [t, E, H], and of one batch of subsets' [S·t, k, H].
CHUNK_ELEMENTS = 2**25

Progress = Callable[[int, int], None]  # (subsets scored so far, subsets in total)


@dataclass
class LayerResult:
    """What the search found for one layer."""

    kept: list[int]  # ascending expert ids
    method: str  # "exact" | "greedy"
    objective: float  # err(kept)
    subsets_scored: int
    dropped_order: list[int] = field(default_factory=list)  # greedy: first dropped first
    exact_objective: float | None = None  # greedy where enumeration was feasible too

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "method": self.method,
            "objective": self.objective,
            "subsets_scored": self.subsets_scored,
        }
        if self.dropped_order:
            doc["dropped_order"] = self.dropped_order
        if self.exact_objective is not None:
            doc["exact_objective"] = self.exact_objective
            doc["gap"] = self.objective - self.exact_objective
        return doc


def work(num_experts: int, r: int, method: str) -> int:
    """Subsets scored by ``method`` for one layer (the bound the docs quote)."""
    if method == "exact":
        return math.comb(num_experts, r)
    return (num_experts * (num_experts + 1) - r * (r + 1)) // 2


def choose_method(num_experts: int, r: int, search: str, max_subsets: int = MAX_SUBSETS) -> str:
    """``auto``: exact when C(E, r) ≤ ``max_subsets``, else greedy; or as asked."""
    if search not in ("auto", "exact", "greedy"):
        raise LensError(f"--naee-search must be auto, exact or greedy (got {search!r})")
    if search == "auto":
        return "exact" if math.comb(num_experts, r) <= max_subsets else "greedy"
    return search


class LayerProblem:
    """One layer's routing and per-expert outputs over its calibration tokens, ready to score."""

    def __init__(self, layer: MoeLayer, inputs: Any) -> None:
        import torch  # lazy: only runs that load a model need it

        if layer.family.masked_routing is None:
            raise LensError(
                f"{layer.name}: NAEE needs the {layer.family.name!r} family's masked routing, "
                "which the lens does not have"
            )
        self.layer = layer
        self.route = layer.family.masked_routing
        self.inputs = inputs
        self.num_experts = layer.num_experts
        tokens, hidden = inputs.shape
        self.hidden = hidden
        self.chunk = max(1, CHUNK_ELEMENTS // max(1, self.num_experts * hidden))
        self.starts = list(range(0, tokens, self.chunk))
        with torch.inference_mode():
            output = layer.router(inputs)
        if not isinstance(output, tuple) or len(output) != 3:
            raise LensError(
                f"{layer.name}: its router returned {type(output).__name__}, not "
                "(logits, weights, indices); NAEE cannot recompute its routing"
            )
        self.logits = output[layer.family.logits_index].reshape(tokens, -1)
        self.weights, self.index = output[1].reshape(tokens, -1), output[2].reshape(tokens, -1)
        self.cached = tokens * self.num_experts * hidden <= CACHE_ELEMENTS
        self._outputs: dict[int, Any] = {}
        self._targets: dict[int, Any] = {}

    @property
    def num_tokens(self) -> int:
        return int(self.inputs.shape[0])

    def expert_outputs(self, start: int) -> Any:
        """y ``[t, E, H]`` float32 of every expert on the chunk's tokens (experts' own forward)."""
        import torch  # lazy: only runs that load a model need it

        if start in self._outputs:
            return self._outputs[start]
        x = self.inputs[start : start + self.chunk]
        t = x.shape[0]
        unit = torch.ones((t, 1), dtype=x.dtype, device=x.device)
        with torch.inference_mode():
            y = torch.stack(
                [
                    self.layer.experts(x, torch.full((t, 1), e, device=x.device), unit).float()
                    for e in range(self.num_experts)
                ],
                dim=1,
            )
        if self.cached:
            self._outputs[start] = y
        return y

    def target(self, start: int, y: Any) -> Any:
        """Z ``[t, H]``: the routed output with the model's own routing, from the same y."""
        if start not in self._targets:
            self._targets[start] = _combine(
                y, self.weights[start : start + self.chunk], self.index[start : start + self.chunk]
            )
        return self._targets[start]

    def errors(self, keeps: Any) -> Any:
        """err(S) float64 ``[S]`` for boolean kept sets ``keeps`` ``[S, E]``."""
        import torch  # lazy: only runs that load a model need it

        keeps = keeps.to(self.logits.device)
        total = torch.zeros(keeps.shape[0], dtype=torch.float64, device=self.logits.device)
        with torch.inference_mode():
            for start in self.starts:
                y = self.expert_outputs(start)
                z = self.target(start, y)
                logits = self.logits[start : start + self.chunk]
                t = logits.shape[0]
                top_k = self.index.shape[1]
                per = max(1, CHUNK_ELEMENTS // max(1, t * top_k * self.hidden))
                for first in range(0, keeps.shape[0], per):
                    dropped = ~keeps[first : first + per]  # [s, E]
                    s = dropped.shape[0]
                    flat_dropped = dropped[:, None, :].expand(s, t, -1).reshape(s * t, -1)
                    _, weights, index = self.route(
                        self.layer.router, logits.repeat(s, 1), flat_dropped
                    )
                    rows = torch.arange(t, device=y.device).repeat(s)[:, None]  # [s·t, 1]
                    z_hat = (weights.float()[:, :, None] * y[rows, index]).sum(dim=1)
                    diff = (z.repeat(s, 1) - z_hat).double()
                    total[first : first + s] += (diff * diff).sum(dim=-1).view(s, t).sum(dim=1)
        if not self.cached:
            self._targets.clear()
        return total


def _combine(y: Any, weights: Any, index: Any) -> Any:
    """Σ_j w_j · y[index_j] per token: ``y`` [t, E, H], ``weights``/``index`` [t, k] → [t, H]."""
    picked = y.gather(1, index[:, :, None].expand(-1, -1, y.shape[-1]))
    return (weights.float()[:, :, None] * picked).sum(dim=1)


def search_layer(
    problem: LayerProblem,
    r: int,
    method: str,
    progress: Progress | None = None,
    compare_exact: bool = False,
) -> LayerResult:
    """The kept set of size ``r`` by ``method``; ``compare_exact`` also enumerates (greedy gap)."""
    num_experts = problem.num_experts
    if not problem.layer.top_k <= r <= num_experts:
        raise LensError(
            f"r={r} is outside {problem.layer.top_k}..{num_experts} (the model's top-k to E)"
        )
    total = work(num_experts, r, method) + (work(num_experts, r, "exact") if compare_exact else 0)
    scored = [0]

    def tick(count: int) -> None:
        scored[0] += count
        if progress is not None:
            progress(scored[0], total)

    if method == "exact":
        return _exact(problem, r, tick)
    result = _greedy(problem, r, tick)
    if compare_exact:
        result.exact_objective = _exact(problem, r, tick).objective
    return result


def _exact(problem: LayerProblem, r: int, tick: Callable[[int], None]) -> LayerResult:
    import torch  # lazy: only runs that load a model need it

    num_experts = problem.num_experts
    best: tuple[float, tuple[int, ...]] | None = None
    subsets = itertools.combinations(range(num_experts), r)
    scored = 0
    while True:
        batch = list(itertools.islice(subsets, 512))
        if not batch:
            break
        keeps = torch.zeros((len(batch), num_experts), dtype=torch.bool)
        for row, subset in enumerate(batch):
            keeps[row, list(subset)] = True
        errors = problem.errors(keeps).cpu()
        position = int(torch.argmin(errors))  # the first minimum: lexicographic tie-break
        value = float(errors[position])
        if best is None or value < best[0]:
            best = (value, batch[position])
        scored += len(batch)
        tick(len(batch))
    assert best is not None
    return LayerResult(kept=list(best[1]), method="exact", objective=best[0], subsets_scored=scored)


def _greedy(problem: LayerProblem, r: int, tick: Callable[[int], None]) -> LayerResult:
    import torch  # lazy: only runs that load a model need it

    num_experts = problem.num_experts
    keep = torch.ones(num_experts, dtype=torch.bool)
    dropped: list[int] = []
    objective = 0.0
    scored = 0
    while int(keep.sum()) > r:
        candidates = [e for e in range(num_experts) if keep[e]]
        keeps = keep.repeat(len(candidates), 1)
        keeps[torch.arange(len(candidates)), torch.tensor(candidates)] = False
        errors = problem.errors(keeps).cpu()
        position = int(torch.argmin(errors))  # ties: the lower expert id
        keep[candidates[position]] = False
        dropped.append(candidates[position])
        objective = float(errors[position])
        scored += len(candidates)
        tick(len(candidates))
    kept = [e for e in range(num_experts) if keep[e]]
    if not dropped:  # r = E: nothing to drop
        objective = float(problem.errors(keep[None]).cpu()[0])
    return LayerResult(
        kept=kept,
        method="greedy",
        objective=objective,
        subsets_scored=scored,
        dropped_order=dropped,
    )
