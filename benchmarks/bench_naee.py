"""NAEE's search on a model shaped like the sample model: 4 layers, top-4 of 32 experts, keep 8.

C(32, 8) ≈ 10.5 million kept sets per layer is far beyond enumeration, so
this measures the greedy backward elimination (492 scored sets per layer)
plus the streamed per-layer input capture, over 64 calibration sequences.

    PYTHONPATH=. python benchmarks/bench_naee.py [--samples 64] [--max-length 128]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.model.options import ModelOptions  # noqa: E402
from core.naee.runner import run_naee  # noqa: E402
from tests.tiny_models import TRAINING_TEXT, build_tiny_model  # noqa: E402

#: The sample model's MoE shape (scripts/sample_build/settings.py), untrained.
SHAPE = dict(
    hidden_size=128,
    num_hidden_layers=4,
    num_local_experts=32,
    num_experts_per_tok=4,
    intermediate_size=64,
    layer_types=["sliding_attention", "full_attention"] * 2,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--r", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            folder = build_tiny_model("gpt_oss", Path(tmp) / "model", overrides=SHAPE)
        rng = random.Random(0)
        words = " ".join(TRAINING_TEXT).split()
        lines = [" ".join(rng.choice(words) for _ in range(200)) for _ in range(args.samples)]
        data = Path(tmp) / "calib.txt"
        data.write_text("\n".join(lines) + "\n", encoding="utf-8")
        options = ModelOptions(
            model=str(folder),
            data=str(data),
            max_length=args.max_length,
            batch_size=8,
            device="cpu",
            dtype="float32",
        )
        start = time.perf_counter()
        result = run_naee(options, args.r)
        elapsed = time.perf_counter() - start
    meta = result.metadata
    print(
        f"naee: {meta['search']} search, {len(meta['layers'])} layers, r={args.r} of 32, "
        f"{meta['samples']} samples, {meta['tokens']} tokens: {elapsed:.1f} s "
        f"({sum(layer['subsets_scored'] for layer in meta['layers'])} sets scored)"
    )


if __name__ == "__main__":
    main()
