"""The shipped bundles' error bars and "different, or just noise?" (issue 15), for
``summary.json``: exactly what ``lens compare --ci``, ``lens stats --ci`` and
``lens ablate --shuffles`` compute, through the same ``core`` functions."""

from __future__ import annotations

from core import engine
from core.ablation import ablate_shuffled
from core.uncertainty import bootstrap_compare, bootstrap_stats, permutation_test

REPLICATES = 200
PERMUTATIONS = 200
SHUFFLES = 20
SEED = 0


def _rounded(pair, digits: int = 5):
    return None if pair is None else [None if v is None else round(v, digits) for v in pair]


def uncertainty_section(profiles: list[engine.Profile], r: int, step: int = 8) -> dict:
    """Per pair: the 95 % intervals of the layer means and the permutation test; per set:
    the univariate intervals and the convergence count over shuffled orders."""
    pairs = {}
    for i, a in enumerate(profiles):
        for b in profiles[i + 1 :]:
            ci = bootstrap_compare(a, b, r, replicates=REPLICATES, seed=SEED).to_json()
            diff = permutation_test(a, b, r, permutations=PERMUTATIONS, seed=SEED).to_json()
            pairs[f"{a.name}|{b.name}"] = {
                "ci": {k: _rounded(v) for k, v in ci["mean"].items()},
                "js_divergence_p": round(diff["js_divergence_p"], 4),
                "jaccard_p": round(diff["jaccard_p"], 4),
                "noise_floor": {k: _rounded(v) for k, v in diff["noise_floor"].items()},
            }
    sets = {}
    for p in profiles:
        stats = bootstrap_stats(p, replicates=REPLICATES, seed=SEED).to_json()
        shuffled = ablate_shuffled(p, r, step, None, SHUFFLES, SEED).to_json()
        sets[p.name] = {
            "ci": {k: _rounded(v, 4) for k, v in stats["mean"].items()},
            "convergence": {
                k: shuffled[k]
                for k in ("shuffles", "converged_at_median", "converged_at_range", "not_converged")
            },
        }
    return {
        "r": r,
        "replicates": REPLICATES,
        "permutations": PERMUTATIONS,
        "shuffles": SHUFFLES,
        "seed": SEED,
        "level": 0.95,
        "pairs": pairs,
        "sets": sets,
    }
