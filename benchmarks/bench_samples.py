"""``lens samples`` speed on a bundle shaped like gpt-oss-120b (L=36, E=128, N=20,000).

Run by hand (not part of the test suite):

    python benchmarks/bench_samples.py [--samples 20000] [--dir /tmp/lens-bench] [--r 32]

Times :func:`core.samples.analyse` (per-sample JS, exact leave-one-out
influence, near-duplicate groups) after one untimed read of the file, so the
OS page cache is warm as it is for a user who just collected or copied it.
The synthetic bundle is the one ``bench_core.py`` writes (softmax of Gaussian
logits times a token count per sample).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import make  # noqa: E402
from core.formats.bundle import load_bundle  # noqa: E402
from core.samples import analyse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lens-bench"))
    parser.add_argument("--r", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"a-{args.samples}.safetensors"
    make(path, args.samples, seed=0, energy=True)
    bundle = load_bundle(path)
    np.add.reduce(bundle.prob_sum, axis=0, dtype=np.float64)  # warm the page cache
    times, cpu = [], []
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = analyse(load_bundle(path), args.r)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    changed = int((report.mask_changes > 0).sum())
    grouped = int((report.groups >= 0).sum())
    print(
        f"N={bundle.num_samples} L={bundle.num_layers} E={bundle.num_experts} r={args.r}: "
        f"wall best {min(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s; "
        f"CPU best {min(cpu):.2f} s; load average {os.getloadavg()[0]:.1f} "
        f"({changed} samples move the mask, {grouped} in duplicate groups)"
    )


if __name__ == "__main__":
    main()
