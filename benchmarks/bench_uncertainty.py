"""Cost of ``lens compare --ci`` against plain ``lens compare`` at gpt-oss-120b's shape.

Run by hand (not part of the test suite):

    python benchmarks/bench_uncertainty.py [--samples 20000] [--energy] [--dir /tmp/lens-bench-ci]

Target (issue 15): 200 bootstrap replicates of both sets plus 200 permutations
in at most 3x the time of the plain comparison. Both stages load the bundles
and build the JSON document the command prints, each in a fresh subprocess
(page cache warm, best of ``--repeats``, with ``bench_core.best_run``; since
2026-11-30 ``bench_core.py`` itself reports medians of interleaved runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import E, L, best_run, make  # noqa: E402

STAGES = {
    "compare": """
from core.engine import Profile, compare, verdict
def run(paths):
    a, b = Profile.load(paths[0]), Profile.load(paths[1])
    result = compare(a, b, 32)
    result.to_json(); verdict(result)
""",
    "compare_ci": """
from core.engine import Profile, compare, verdict
from core.uncertainty import bootstrap_compare, permutation_test
def run(paths):
    a, b = Profile.load(paths[0]), Profile.load(paths[1])
    result = compare(a, b, 32)
    doc = result.to_json()
    doc["ci"] = bootstrap_compare(a, b, 32, replicates=200).to_json()
    difference = permutation_test(a, b, 32, permutations=200)
    doc["difference"] = difference.to_json()
    verdict(result, difference)
""",
}

RUNNER = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
{body}
t, c = time.perf_counter(), time.process_time()
run({paths!r})
print(json.dumps({{"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def stage(name: str, paths: list[str], repeats: int) -> dict:
    return best_run(RUNNER.format(root=str(ROOT), body=STAGES[name], paths=paths), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lens-bench-ci"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--energy", action="store_true", help="bundles also hold energy_sum")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    suffix = "_energy" if args.energy else ""
    paths = [args.dir / f"{name}_{args.samples}{suffix}.safetensors" for name in ("a", "b")]
    for seed, path in enumerate(paths):
        make(path, args.samples, seed, args.energy)
    for path in paths:  # warm the page cache
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    strs = [str(p) for p in paths]
    plain = stage("compare", strs, args.repeats)
    with_ci = stage("compare_ci", strs, args.repeats)
    print(
        json.dumps(
            {
                "shape": [args.samples, L, E],
                "energy": args.energy,
                "compare_s": round(plain["seconds"], 3),
                "compare_ci_s": round(with_ci["seconds"], 3),
                "ci_over_compare": round(with_ci["seconds"] / plain["seconds"], 2),
                "ci_over_compare_cpu": round(with_ci["cpu_seconds"] / plain["cpu_seconds"], 2),
                "load_average": [round(x, 1) for x in os.getloadavg()],
                "compare_peak_rss_mb": round(plain["maxrss_mb"], 1),
                "compare_ci_peak_rss_mb": round(with_ci["maxrss_mb"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
