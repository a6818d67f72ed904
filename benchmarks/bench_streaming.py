"""Memory and speed of ``lens collect --stream-layers`` against whole-model collection (CPU).

Builds a tiny-vocabulary but wide checkpoint (8 decoder layers whose expert
weights dominate, so one layer's weights are a clear unit), then runs in
separate processes, each reporting its peak RSS and its collection time:

- ``baseline``: a streamed run on a 2-layer, hidden-32 model (torch,
  transformers and the pipeline loaded; almost no weights);
- ``stream``: a streamed run on the wide checkpoint;
- ``whole``: a whole-model run on the wide checkpoint.

Memory: stream − baseline should be about two layers' weights plus one
batch of activations, far below the checkpoint. Speed: stream / whole when
the model fits (target ≤ 1.3), as wall-clock time and as the process's CPU time (all its threads), each
both as the fastest of ``--repeat`` alternating runs and as the median of
the ratios of each stream run to the whole run beside it (neighbours in time
see the same load: on a shared machine that median moves least).

    python benchmarks/bench_streaming.py                  # defaults below
    python benchmarks/bench_streaming.py --hidden 512 --samples 128 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = (
    "Mixture-of-experts models route every token to a few experts, and calibration data "
    "decides which experts survive pruning. The quick brown fox jumps over the lazy dog. "
)


def build_wide(folder: Path, family: str, layers: int, hidden: int, intermediate: int) -> Path:
    """A random ``family`` checkpoint with ``layers`` layers whose experts dominate its size."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.tiny_models import EXPERTS, TOP_K, build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    extra = {"num_local_experts": EXPERTS}
    if family == "gpt_oss":
        extra.update(head_dim=hidden // 4, sliding_window=16, max_position_embeddings=4096 * 32)
        extra["layer_types"] = ["sliding_attention", "full_attention"] * (layers // 2)
    config = AutoConfig.for_model(
        family,
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=intermediate,
        num_experts_per_tok=TOP_K,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        **extra,
    )
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.save_pretrained(str(folder))
    return folder


def write_data(path: Path, samples: int, repeats: int) -> Path:
    path.write_text(
        "\n".join(f"{i}: " + TEXT * repeats for i in range(samples)) + "\n", encoding="utf-8"
    )
    return path


def child(model: str, data: str, out: str, stream: bool, batch_size: int, max_length: int) -> None:
    """One measured run (in its own process): prints its peak RSS and time as JSON.

    ``peak_rss`` is the process's lifetime peak; ``run_peak`` is the highest
    resident size sampled (every 2 ms) while the collection ran, minus the
    resident size just before it started (torch and transformers imported).
    """
    import threading

    import torch  # noqa: F401  (imported before the start line, like a warm process)
    import transformers.core_model_loading  # noqa: F401

    from core.collect.config import CollectConfig
    from core.collect.runner import run_collection
    from core.model.native_memory import mkl_buffer_bytes

    page = os.sysconf("SC_PAGE_SIZE")

    def resident() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * page

    start_rss = resident()
    peak = [start_rss]
    running = [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], resident())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    config = CollectConfig.from_settings(
        model=model,
        data=data,
        out=out,
        batch_size=batch_size,
        max_length=max_length,
        device="cpu",
        dtype="float32",
        stream_layers=stream,
    )
    start = time.perf_counter()
    cpu_start = time.process_time()
    run_collection(config)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    running[0] = False
    sampler.join()
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(
        json.dumps(
            {
                "peak_rss": lifetime,
                "run_peak": peak[0] - start_rss,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "mkl_buffer_bytes": mkl_buffer_bytes(),  # what MKL still caches at the end
            }
        )
    )


def measure(
    model: Path, data: Path, out: Path, stream: bool, batch_size: int, max_length: int
) -> dict:
    command = [
        sys.executable, __file__, "--child", str(model), str(data), str(out),
        "1" if stream else "0", str(batch_size), str(max_length),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def layer_bytes(model: Path, index: int) -> int:
    from core.model.layer_weights import CheckpointTensors

    return CheckpointTensors(model).nbytes(f"model.layers.{index}.")


def run(args: argparse.Namespace, workdir: Path) -> dict:
    from tests.tiny_models import build_tiny_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny = build_tiny_model("mixtral", workdir / "tiny")
    wide = build_wide(workdir / "wide", args.family, args.layers, args.hidden, args.intermediate)
    data = write_data(workdir / "data.txt", args.samples, args.repeats)
    size = sum(p.stat().st_size for p in wide.glob("*.safetensors"))
    one_layer = layer_bytes(wide, 0)
    activations = args.batch_size * args.max_length * args.hidden * 4
    results = {
        "family": args.family,
        "layers": args.layers,
        "hidden": args.hidden,
        "checkpoint_bytes": size,
        "layer_bytes": one_layer,
        "batch_activation_bytes": activations,
        "samples": args.samples,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
    }
    out = workdir / "out"
    out.mkdir()
    batch, length = args.batch_size, args.max_length
    results["baseline"] = measure(tiny, data, out / "b.safetensors", True, batch, length)
    # Alternate the two runs and keep each one's fastest: a shared machine's load drifts.
    runs: dict[str, list[dict]] = {"stream": [], "whole": []}
    for attempt in range(args.repeat):
        for kind in ("stream", "whole"):
            target = out / f"{kind}-{attempt}.safetensors"
            runs[kind].append(measure(wide, data, target, kind == "stream", batch, length))
    for kind, found in runs.items():
        results[kind] = {
            "peak_rss": max(r["peak_rss"] for r in found),
            "run_peak": max(r["run_peak"] for r in found),
            "seconds": min(r["seconds"] for r in found),
            "all_seconds": [r["seconds"] for r in found],
            "cpu_seconds": min(r.get("cpu_seconds", 0.0) for r in found),
        }
    base = results["baseline"]
    for kind in ("stream", "whole"):
        results[f"{kind}_over_baseline"] = results[kind]["run_peak"] - base["run_peak"]
    results["stream_over_baseline_in_layers"] = results["stream_over_baseline"] / one_layer
    results["speed_ratio"] = results["stream"]["seconds"] / results["whole"]["seconds"]
    whole_cpu = results["whole"]["cpu_seconds"]
    results["cpu_ratio"] = results["stream"]["cpu_seconds"] / whole_cpu if whole_cpu else None
    # Each attempt's two runs are neighbours in time: their ratio sees the same load, and
    # the median over attempts is the figure least moved by a drifting machine.
    pairs = zip(runs["stream"], runs["whole"])
    results["pair_ratios"] = {
        "wall": [s["seconds"] / w["seconds"] for s, w in zip(runs["stream"], runs["whole"])],
        "cpu": [s["cpu_seconds"] / w["cpu_seconds"] for s, w in pairs if w["cpu_seconds"]],
    }
    for kind, ratios in results["pair_ratios"].items():
        results[f"median_pair_{kind}_ratio"] = statistics.median(ratios) if ratios else None
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, model, data, out, stream, batch, length = sys.argv
        child(model, data, out, stream == "1", int(batch), int(length))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="mixtral", choices=("mixtral", "gpt_oss"))
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--intermediate", type=int, default=1024)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each kind")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    mib = 1024 * 1024
    print(
        f"{args.family}, {args.layers} layers, hidden {args.hidden}: checkpoint "
        f"{results['checkpoint_bytes'] / mib:.0f} MiB, one layer {results['layer_bytes'] / mib:.1f} MiB"
    )
    for kind in ("baseline", "stream", "whole"):
        r = results[kind]
        print(
            f"  {kind:8s} peak RSS {r['peak_rss'] / mib:7.0f} MiB, during the run "
            f"+{r['run_peak'] / mib:5.0f} MiB   {r['seconds']:6.2f} s wall, "
            f"{r.get('cpu_seconds', 0):6.2f} s CPU"
        )
    print(
        f"  stream − baseline = {results['stream_over_baseline'] / mib:.0f} MiB "
        f"({results['stream_over_baseline_in_layers']:.2f} layers); whole − baseline = "
        f"{results['whole_over_baseline'] / mib:.0f} MiB; stream / whole time = "
        f"{results['speed_ratio']:.2f} wall, {results['cpu_ratio']:.2f} CPU (fastest of each); "
        f"median over interleaved pairs {results['median_pair_wall_ratio']:.2f} wall, "
        f"{results['median_pair_cpu_ratio']:.2f} CPU"
    )


if __name__ == "__main__":
    main()
