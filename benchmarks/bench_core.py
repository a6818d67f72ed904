"""Engine speed and memory on bundles shaped like gpt-oss-120b (L=36, E=128, N=20,000).

Run by hand (not part of the test suite):

    python benchmarks/bench_core.py [--samples 20000] [--dir /tmp/lens-bench]

Prints ratios against the physical floor: the time numpy takes to read both
``prob_sum`` tensors from the (page-cached) files and sum them over samples
once (wall time, and CPU time, which a shared machine's load disturbs far
less). Every timed stage runs in a fresh subprocess so that caches inside the
process (and ``ru_maxrss``) start clean; the OS page cache is warm for all of
them alike (each file is read once before timing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.formats.bundle import bundle_metadata, write_bundle  # noqa: E402

L, E, TOP_K = 36, 128, 4


def make(path: Path, n: int, seed: int, energy: bool) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    tokens = rng.integers(64, 2048, size=n).astype(np.int64)
    prob = np.empty((n, L, E), dtype=np.float32)
    for start in range(0, n, 1000):
        stop = min(n, start + 1000)
        logits = rng.standard_normal((stop - start, L, E), dtype=np.float32) * 2
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        prob[start:stop] = p * tokens[start:stop, None, None]
    tensors = {"prob_sum": prob, "token_count": tokens, "example_ids": np.arange(n, dtype=np.int64)}
    if energy:
        tensors["energy_sum"] = prob * 3.0
    write_bundle(
        path,
        tensors,
        bundle_metadata(
            model="synthetic-gpt-oss-120b",
            dataset=path.stem,
            num_layers=L,
            num_experts=E,
            top_k=TOP_K,
        ),
    )


STAGES = {
    "floor": """
import json, numpy as np
from core.io.safetensors import map_safetensors
def run(paths):
    for p in paths:
        _, t = map_safetensors(__import__('pathlib').Path(p))
        np.add.reduce(t['prob_sum'], axis=0, dtype=np.float64)
""",
    "compare": """
from core.engine import Profile, compare
def run(paths):
    a, b = Profile.load(paths[0]), Profile.load(paths[1])
    compare(a, b, 32).to_json()
""",
    "ablation": """
from core.engine import Profile
from core.ablation import ablate
def run(paths):
    p = Profile.load(paths[0])
    ablate(p, 32, p.bundle.num_samples // 100)
""",
    "new_r": """
import time
from core.engine import Profile, compare
def run(paths):
    a, b = Profile.load(paths[0]), Profile.load(paths[1])
    compare(a, b, 1)  # signatures cached, as in the app after loading
    t = time.perf_counter()
    for r in range(2, 128):
        compare(a, b, r).to_json()
    global per_r
    per_r = (time.perf_counter() - t) / 126
""",
}

RUNNER = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
{body}
paths = {paths!r}
t, c = time.perf_counter(), time.process_time()
run(paths)
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({{"seconds": elapsed, "cpu_seconds": cpu,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "per_r": globals().get("per_r")}}))
"""


def best_run(code: str, repeats: int) -> dict:
    """Run ``code`` in a fresh process ``repeats`` times; the JSON of the fastest run.

    ``cpu_seconds`` (when the code reports it) is the least CPU time of any run:
    on a shared, loaded machine wall time mostly measures the queue for a core,
    CPU time (user + system of the process) what the work itself costs.
    """
    best = None
    least_cpu = None
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout)
        if "cpu_seconds" in result:
            least_cpu = min(result["cpu_seconds"], least_cpu or result["cpu_seconds"])
        if best is None or result["seconds"] < best["seconds"]:
            best = result
    if least_cpu is not None:
        best["cpu_seconds"] = least_cpu
    return best


def stage(name: str, paths: list[str], repeats: int) -> dict:
    return best_run(RUNNER.format(root=str(ROOT), body=STAGES[name], paths=paths), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lens-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--energy", action="store_true", help="bundles also hold energy_sum (compare reads it too)"
    )
    parser.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    suffix = "_energy" if args.energy else ""
    paths = [args.dir / f"{name}_{args.samples}{suffix}.safetensors" for name in ("a", "b")]
    if args.make_only:
        for seed, path in enumerate(paths):
            make(path, args.samples, seed, args.energy)
        return
    # Build the bundles and warm the page cache in child processes, so that this
    # parent stays small: forked children inherit its peak RSS (ru_maxrss).
    subprocess.run([sys.executable, __file__, *sys.argv[1:], "--make-only"], check=True)
    for path in paths:
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    size_mb = paths[0].stat().st_size / 2**20
    strs = [str(p) for p in paths]
    floor = stage("floor", strs, args.repeats)
    cmp = stage("compare", strs, args.repeats)
    abl = stage("ablation", strs, args.repeats)
    new_r = stage("new_r", strs, args.repeats)
    report = {
        "shape": [args.samples, L, E],
        "bundle_mb": round(size_mb, 1),
        "floor_s": round(floor["seconds"], 3),
        "compare_s": round(cmp["seconds"], 3),
        "compare_over_floor": round(cmp["seconds"] / floor["seconds"], 2),
        "compare_over_floor_cpu": round(cmp["cpu_seconds"] / floor["cpu_seconds"], 2),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "ablation_100_steps_s": round(abl["seconds"], 3),
        "ablation_over_floor": round(abl["seconds"] / floor["seconds"], 2),
        "new_r_ms": round(new_r["per_r"] * 1000, 3),
        "compare_peak_rss_mb": round(cmp["maxrss_mb"], 1),
        "compare_peak_rss_over_both_bundles": round(cmp["maxrss_mb"] / (2 * size_mb), 2),
        "ablation_peak_rss_over_bundle": round(abl["maxrss_mb"] / size_mb, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
