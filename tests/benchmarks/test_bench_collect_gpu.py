"""``benchmarks/bench_collect_gpu.py`` at tiny dimensions on the CPU.

The benchmark is meant for a GPU at gpt-oss-20b scale; here it must at least
run end to end, report every mode, and — since its capture modes claim to be
``lens collect``'s own pipeline — collect exactly the statistics an
independent per-sample reference computes by hand from the model's weights.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.core.collect.reference import per_sample_reference  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_collect_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_collect_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_tiny_cpu_run_reports_every_mode(bench, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert bench.main(["--tiny", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    tokens = 8 * 64  # the --tiny defaults: 8 sequences of 64 tokens
    assert list(report["modes"]) == [
        "plain",
        "router_logits",
        "router_only",
        "all",
        "stream_layers",
    ]
    for entry in report["modes"].values():
        assert entry["tokens"] == tokens
        assert entry["tokens_per_s"] > 0
        assert entry["throughput_ratio"] == pytest.approx(
            entry["tokens_per_s"] / report["modes"]["plain"]["tokens_per_s"]
        )
        assert entry["peak_memory_bytes"] is None  # not measurable per mode on a CPU
    assert report["modes"]["plain"]["throughput_ratio"] == 1.0
    check = report["capture_check"]
    assert check["topk_count_per_layer"] == [tokens * 2, tokens * 2]  # 2 layers, top-2
    assert check["stream_topk_count_per_layer"] == [tokens * 2, tokens * 2]
    table = capsys.readouterr().out
    assert table.count("\n| (") == 5 and "| (d) lens collect, every statistic |" in table
    assert "| (e) lens collect --stream-layers (from disk) |" in table


def test_streaming_row_collects_what_the_in_memory_capture_collects(bench, tmp_path) -> None:
    """The streamed row reads the same model back from disk and sees the same token ids."""
    args = bench.parse_args(
        ["--tiny", "--device", "cpu", "--dtype", "float32", "--sequences", "6"]
        + ["--seq-len", "24", "--batch-size", "3", "--stream-dir", str(tmp_path)]
    )
    report, results = bench.run_benchmark(args)
    streamed, in_memory = results["stream_layers"].stats, results["all"].stats
    assert report["modes"]["stream_layers"]["tokens"] == 6 * 24
    assert streamed["token_count"].tolist() == [24] * 6
    np.testing.assert_array_equal(streamed["topk_count"], in_memory["topk_count"])
    for name in ("prob_sum", "weight_sum", "energy_sum", "act_norm_sum", "reap_sum"):
        np.testing.assert_allclose(streamed[name], in_memory[name], rtol=1e-6, err_msg=name)
    assert list(tmp_path.iterdir()) == []  # the saved model is removed afterwards


@pytest.mark.parametrize("mode", ["router_only", "all"])
def test_capture_modes_equal_an_independent_reference(bench, mode: str) -> None:
    """Batched capture through the runner's job = one unpadded hand-computed run per sample."""
    torch.manual_seed(3)
    model = bench.build_model(bench.TINY, "cpu", "float32")
    batches = bench.make_batches(bench.TINY["vocab_size"], 4, 24, 2, seed=5)
    result = bench.run_mode(mode, model, batches, torch.device("cpu"))
    sequences = [[int(t) for t in seq] for batch in batches for seq in batch]
    expected = per_sample_reference(model, "gpt_oss", sequences)
    names = ["prob_sum", "topk_count", "weight_sum"]
    if mode == "all":
        names += ["energy_sum", "act_norm_sum", "act_sqnorm_sum", "reap_sum"]
        # REAP-literal's statistics are checked against REAP's formulas in
        # tests/core/collect/test_reap_literal.py; here only that they are recorded.
        assert {"reap_literal_sum", "reap_literal_count"} <= set(result.stats)
    assert sorted(set(result.stats) - {"reap_literal_sum", "reap_literal_count"}) == sorted(names)
    for name in names:
        got = result.stats[name]
        assert got.shape == (4, 2, 8)
        np.testing.assert_allclose(got, expected[name], rtol=2e-4, atol=1e-4, err_msg=name)
    # Routing is not degenerate: several experts are used in every layer.
    assert (expected["topk_count"].sum(axis=0) > 0).sum(axis=1).min() >= 4
