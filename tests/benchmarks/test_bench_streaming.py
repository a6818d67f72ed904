"""``benchmarks/bench_streaming.py`` at small size: a streamed run's memory, asserted loosely.

A 12-layer checkpoint whose expert weights dominate (one layer ≈ 25 MB, the
checkpoint ≈ 300 MB). The whole-model run must need at least most of the
checkpoint above the baseline (so the measurement can tell the two apart);
the streamed run at most two layers' weights plus one batch of activations
(expert intermediates included), with no further slack — far below the
checkpoint. Loading needs one layer (each tensor is allocated once and the
checkpoint is read into it) and running adds one batch of activations, which
leave the process when freed (``core.model.native_memory``); the second
layer's worth absorbs MKL's work buffers and allocator noise. Measured here:
52 MiB = 2.1 layers above the baseline, against a bound of 67.5 MiB = 2.7
layers (before glibc's threshold was held: 57 MiB against 83.5 MiB with 16 MiB
of slack). The speed ratio is reported by the benchmark, not asserted here: on
a shared 2-core machine single timings swing by 2×.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_streaming.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_streaming", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_streamed_peak_memory_is_about_two_layers_not_the_checkpoint(bench, tmp_path):
    args = argparse.Namespace(
        family="mixtral",
        layers=12,
        hidden=256,
        intermediate=1024,
        samples=16,
        repeats=3,
        batch_size=8,
        max_length=64,
        repeat=1,
    )
    results = bench.run(args, tmp_path)
    layer, checkpoint = results["layer_bytes"], results["checkpoint_bytes"]
    assert 11 * layer < checkpoint < 13 * layer  # experts dominate: a layer is the unit
    # One batch of activations: hidden states in and out, and the top-k expert
    # intermediates [B·S·k, 2I] of the fused experts (float32).
    tokens = args.batch_size * args.max_length
    activations = tokens * (2 * args.hidden + 2 * 2 * args.intermediate) * 4 * 2
    streamed, whole = results["stream_over_baseline"], results["whole_over_baseline"]
    assert whole > 0.8 * checkpoint, results  # the measurement sees a resident checkpoint
    assert streamed <= 2 * layer + activations, results
    assert streamed < 0.5 * checkpoint, results
