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

The error is evaluated as a quadratic form in the routing-weight difference
with each token's Gram matrix of expert outputs (see :class:`LayerProblem`);
the Gram matrices (tokens × E² floats) are computed once per layer and cached
when they fit in ``CACHE_ELEMENTS``, otherwise recomputed per token chunk at
each evaluation (slower, bounded memory).
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
#: Cache the Gram matrices [T, E, E] (float32 elements) up to 1 GiB; beyond, recompute per chunk.
CACHE_ELEMENTS = 2**28
#: Elements of one token chunk's expert outputs [t, E, H], and of a batch of subsets' [t, S, E]
#: work arrays (×4: weights, difference, product).
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
    """One layer's routing and expert-output Gram matrices over its calibration tokens.

    With d_t = w_t − ŵ_t(S) the difference of the dense ``[E]`` routing-weight
    vectors (zero outside the selected experts) and Y_t the ``[E, H]`` outputs
    of every expert on token t, Z_t − Ẑ_t = d_tᵀ Y_t, so

        ‖Z_t − Ẑ_t‖² = d_tᵀ G_t d_t,   G_t = Y_t Y_tᵀ  (``[E, E]``, once per layer).

    Scoring a kept set then costs E² per token instead of k·H (and no Z is
    ever held), and because d is formed before the quadratic form an
    unchanged routing scores exactly 0 — no cancellation between ‖Z‖² terms.
    """

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
        weights, index = output[1].reshape(tokens, -1), output[2].reshape(tokens, -1)
        self.dense = _dense(weights, index, self.num_experts)  # the model's own routing
        self.cached = tokens * self.num_experts * self.num_experts <= CACHE_ELEMENTS
        self._grams: dict[int, Any] = {}

    @property
    def num_tokens(self) -> int:
        return int(self.inputs.shape[0])

    def gram(self, start: int) -> Any:
        """G ``[t, E, E]`` float32 of the chunk: inner products of every pair of expert outputs,
        each expert's output y_e(x) from the experts module's own forward with unit weight."""
        import torch  # lazy: only runs that load a model need it

        if start in self._grams:
            return self._grams[start]
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
            gram = torch.bmm(y, y.transpose(1, 2))
        if self.cached:
            self._grams[start] = gram
        return gram

    def errors(self, keeps: Any) -> Any:
        """err(S) float64 ``[S]`` for boolean kept sets ``keeps`` ``[S, E]``."""
        import torch  # lazy: only runs that load a model need it

        keeps = keeps.to(self.logits.device)
        total = torch.zeros(keeps.shape[0], dtype=torch.float64, device=self.logits.device)
        experts = self.num_experts
        with torch.inference_mode():
            for start in self.starts:
                gram = self.gram(start)
                logits = self.logits[start : start + self.chunk]
                dense = self.dense[start : start + self.chunk]
                t = logits.shape[0]
                per = max(1, CHUNK_ELEMENTS // max(1, t * experts * 4))
                for first in range(0, keeps.shape[0], per):
                    dropped = ~keeps[first : first + per]  # [s, E]
                    s = dropped.shape[0]
                    flat_dropped = dropped[:, None, :].expand(s, t, -1).reshape(s * t, -1)
                    _, weights, index = self.route(
                        self.layer.router, logits.repeat(s, 1), flat_dropped
                    )
                    diff = dense.repeat(s, 1) - _dense(weights, index, experts)  # [s·t, E]
                    diff = diff.view(s, t, experts).transpose(0, 1)  # [t, s, E]
                    quadratic = (torch.bmm(diff, gram) * diff).sum(dim=-1)  # [t, s]
                    total[first : first + s] += quadratic.double().sum(dim=0)
        return total


def _dense(weights: Any, index: Any, num_experts: int) -> Any:
    """Routing weights ``[t, k]`` at ``index`` as dense float32 vectors ``[t, E]``."""
    import torch  # lazy: only runs that load a model need it

    dense = torch.zeros((index.shape[0], num_experts), dtype=torch.float32, device=index.device)
    return dense.scatter_(1, index, weights.float())


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
