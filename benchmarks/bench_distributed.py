"""Throughput of `lens collect` with 1 process vs 2 torchrun ranks (CPU, gloo).

Run by hand (not part of the test suite):

    python benchmarks/bench_distributed.py [--samples 384] [--threads-per-rank 1]

Uses the tiny GPT-OSS of ``bench_collect.py`` (hidden 256, 4 layers, 32
experts, top-4). Each configuration is a fresh command, timed end to end
(imports, model load, collection, bundle write) and by the collection rate
rank 0 reports. On a machine with C cores, compare like with like: one
process using all C threads against C/threads ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_collect import build_model, make_data  # noqa: E402

RATE = re.compile(r"([\d,.]+) samples/s\s+([\d,.]+) tokens/s")


def run(command: list[str], threads: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
    }
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    rates = RATE.findall(result.stderr)
    samples_per_s = float(rates[-1][0].replace(",", "")) if rates else None
    return {"wall_s": round(wall, 2), "rank0_samples_per_s": samples_per_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads-per-rank", type=int, default=1)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "lens-bench-collect"
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    model = build_model(args.dir / "model")
    data = make_data(args.dir / f"dist-{args.samples}.txt", args.samples, seed=3)
    cores = os.cpu_count() or 1
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    report: dict[str, object] = {"cores": cores, "samples": args.samples}
    with tempfile.TemporaryDirectory() as tmp:

        def collect(name: str) -> list[str]:
            return [
                "collect", "-m", str(model), "-d", str(data), "-o", f"{tmp}/{name}.safetensors",
                "--batch-size", str(args.batch_size), "--max-length", "256", "--device", "cpu",
            ]  # fmt: skip

        single = [sys.executable, "-m", "lens_tui"]
        ranks = max(1, cores // args.threads_per_rank)
        dist = [torchrun, "--nproc-per-node", str(ranks), "-m", "lens_tui"]
        report["1 process, 1 thread"] = run(single + collect("a"), 1)
        report[f"1 process, {cores} threads"] = run(single + collect("b"), cores)
        report[f"{ranks} ranks x {args.threads_per_rank} thread"] = run(
            dist + collect("c"), args.threads_per_rank
        )
    base = report[f"1 process, {cores} threads"]["wall_s"]
    report["speedup_vs_1_process_all_threads"] = round(
        base / report[f"{ranks} ranks x {args.threads_per_rank} thread"]["wall_s"], 3
    )
    report["speedup_vs_1_process_1_thread"] = round(
        report["1 process, 1 thread"]["wall_s"]
        / report[f"{ranks} ranks x {args.threads_per_rank} thread"]["wall_s"],
        3,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
