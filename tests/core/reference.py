"""Naive, loop-by-loop reference implementations of docs/formats.md §Metrics, for tests only.

Written straight from its formulas with Python floats and explicit
loops over samples, layers and experts, independent of ``core.metrics``'s
vectorised numpy code, so the two can be checked against each other.
"""

from __future__ import annotations

import math

EPS = 1e-12


def signature(prob_sum, token_count, samples) -> list[list[float]]:
    """P_l(S)[e] = Σ_i prob_sum[i,l,e] / Σ_i T_i, as nested lists [L][E]."""
    num_layers, num_experts = len(prob_sum[0]), len(prob_sum[0][0])
    tokens = sum(int(token_count[i]) for i in samples)
    out = []
    for layer in range(num_layers):
        row = []
        for e in range(num_experts):
            total = 0.0
            for i in samples:
                total += float(prob_sum[i][layer][e])
            row.append(total / tokens)
        out.append(row)
    return out


def sparsity_pct(p, tau):
    return 100.0 * sum(1 for v in p if v < tau) / len(p)


def variance(p):
    mean = sum(p) / len(p)
    return sum((v - mean) ** 2 for v in p) / len(p)


def n_eff(p):
    return 1.0 / (sum(v * v for v in p) + EPS)


def entropy_bits(p):
    return -sum(v * math.log2(v + EPS) for v in p)


def top_r(p, r) -> set[int]:
    """The r largest, ties to the lower index: repeatedly pick the first maximum."""
    remaining = list(range(len(p)))
    chosen = set()
    for _ in range(r):
        best = remaining[0]
        for e in remaining:
            if p[e] > p[best]:
                best = e
        chosen.add(best)
        remaining.remove(best)
    return chosen


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b)


def js_bits(p, q):
    sp, sq = sum(p), sum(q)
    pn = [v / sp for v in p]
    qn = [v / sq for v in q]
    total = 0.0
    for x, y in zip(pn, qn):
        mid = 0.5 * (x + y)
        if x > 0:
            total += 0.5 * x * math.log2(x / mid)
        if y > 0:
            total += 0.5 * y * math.log2(y / mid)
    return total


def pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    vx = sum((a - mx) ** 2 for a in x)
    vy = sum((b - my) ** 2 for b in y)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)


def retained(mask: set[int], q) -> float:
    return sum(q[e] for e in mask)
