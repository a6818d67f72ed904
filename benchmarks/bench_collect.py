"""Collection overhead and memory on a tiny GPT-OSS (E = 32, top-4).

Run by hand (not part of the test suite):

    python benchmarks/bench_collect.py [--device cpu|cuda] [--repeats 7]

Forward passes over the same padded batches, timed interleaved (one pass of
each mode per round, the median of the rounds reported), all on the model's
backbone (no LM head, as collection runs it):

- ``plain``: the forward pass alone (the floor);
- ``router_logits``: the same with ``output_router_logits=True`` (transformers'
  built-in anchor: dense logits only, no top-k, weights or norms);
- ``router_only``: our capture with ``--no-energy`` (prob_sum, topk_count,
  weight_sum), reduced per sample on the device;
- ``all``: our capture with every statistic (expert-output norms too).

Then the whole ``run_collection`` pipeline (tokenize, batch, capture, resumable
chunks, bundle write) against a plain forward loop over the same batches, and
peak RSS of collection runs in fresh processes for two dataset sizes and two
batch sizes: memory must grow with the batch, not with the dataset.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HIDDEN, LAYERS, EXPERTS, TOP_K, INTERMEDIATE = 256, 4, 32, 4, 256


def build_model(folder: Path) -> Path:
    """A tiny GPT-OSS of the real class, saved with a locally trained tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.tiny_models import build_tokenizer

    if (folder / "config.json").exists():
        return folder
    tokenizer = build_tokenizer(folder, vocab_size=1000)
    config = AutoConfig.for_model(
        "gpt_oss",
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=INTERMEDIATE,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        sliding_window=128,
        max_position_embeddings=4096,
        layer_types=["sliding_attention", "full_attention"] * (LAYERS // 2),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return folder


def make_data(path: Path, samples: int, seed: int = 0) -> Path:
    """Random sentences of varied length (so batches need padding)."""
    import random

    rng = random.Random(seed)
    words = "the router sends every token to a few experts; calibration data decides which survive"
    words = words.split(" ")
    lines = [
        " ".join(rng.choice(words) for _ in range(rng.randint(20, 200))) for _ in range(samples)
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def forward_overhead(
    model_dir: Path, device: str, repeats: int, batch: int, length: int, cpu_time: bool
) -> dict:
    """Median time of each mode; ``cpu_time`` counts this process's CPU seconds, not wall
    time, so other processes on a shared machine barely move the ratios (CPU only)."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.collect.capture import RouterCapture
    from core.families.layers import find_moe_layers

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    backbone = model.model
    layers = find_moe_layers(model)
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(8):
        ids = torch.randint(3, model.config.vocab_size, (batch, length), generator=generator)
        lengths = torch.randint(length // 4, length + 1, (batch,), generator=generator)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        batches.append((ids.to(device), mask.to(device), positions.to(device)))

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run(mode: str) -> float:
        capture = None
        if mode in ("router_only", "all"):
            capture = RouterCapture(layers, energy=mode == "all").__enter__()
        sync()
        start = time.process_time() if cpu_time else time.perf_counter()
        with torch.inference_mode():
            for ids, mask, positions in batches:
                kwargs = dict(attention_mask=mask, position_ids=positions, use_cache=False)
                if capture is not None:
                    capture.begin_batch(mask)
                    backbone(ids, **kwargs)
                    capture.end_batch()
                elif mode == "router_logits":
                    out = backbone(ids, output_router_logits=True, **kwargs)
                    _ = [logits.cpu() for logits in out.router_logits]
                else:
                    backbone(ids, **kwargs)
        sync()
        elapsed = (time.process_time() if cpu_time else time.perf_counter()) - start
        if capture is not None:
            capture.close()
        return elapsed

    modes = ("plain", "router_logits", "router_only", "all")
    for mode in modes:  # warm-up
        run(mode)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            times[mode].append(run(mode))
    median = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "tokens_per_round": sum(int(m.sum()) for _, m, _ in batches),
        "plain_s": median["plain"],
        **{f"{mode}_ratio": median[mode] / median["plain"] for mode in modes[1:]},
    }


def pipeline_overhead(model_dir: Path, data: Path, device: str, batch: int, length: int) -> dict:
    """run_collection end to end vs a plain forward loop over the same batches."""
    import torch

    from core.collect.data import load_samples
    from core.collect.runner import CollectConfig, run_collection
    from core.model.batching import plan_batches
    from core.model.loading import load_model_and_tokenizer
    from core.model.tokenize import tokenize

    with tempfile.TemporaryDirectory() as tmp:
        config = CollectConfig.from_settings(
            model=str(model_dir),
            data=str(data),
            out=Path(tmp) / "b.safetensors",
            batch_size=batch,
            max_length=length,
            device=device,
        )
        model, tokenizer = load_model_and_tokenizer(config.options)
        samples = load_samples(str(data))
        token_ids = tokenize(tokenizer, samples, config.options)
        batches = plan_batches(list(range(len(samples))), [len(t) for t in token_ids], batch)
        start = time.perf_counter()
        with torch.inference_mode():
            for plan in batches:
                longest = max(len(token_ids[i]) for i in plan)
                ids = torch.zeros((len(plan), longest), dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, i in enumerate(plan):
                    ids[row, : len(token_ids[i])] = torch.tensor(token_ids[i])
                    mask[row, : len(token_ids[i])] = 1
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                model.model(
                    ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    use_cache=False,
                )
        plain = time.perf_counter() - start
        collect_times = []
        for _ in range(2):
            config.out.unlink(missing_ok=True)
            started = {}

            def mark(update, started=started):
                if update.stage == "collecting" and "t" not in started:
                    started["t"] = time.perf_counter()

            run_collection(config, progress=mark)
            collect_times.append(time.perf_counter() - started["t"])
        return {
            "plain_loop_s": plain,
            "collect_s": min(collect_times),
            "ratio": min(collect_times) / plain,
        }


def peak_rss_fresh(model_dir: Path, data: Path, batch: int, samples: int, device: str) -> float:
    """ru_maxrss of RUSAGE_CHILDREN is a max over all children: measure each in its own shell."""
    inner = "\n".join(
        [
            "import sys, tempfile",
            f"sys.path.insert(0, {str(ROOT)!r})",
            "from pathlib import Path",
            "from core.collect.runner import CollectConfig, run_collection",
            "with tempfile.TemporaryDirectory() as t:",
            f"    run_collection(CollectConfig.from_settings(model={str(model_dir)!r}, data={str(data)!r},"
            f" out=Path(t) / 'b.safetensors', batch_size={batch}, num_samples={samples},"
            f" max_length=256, device={device!r}))",
        ]
    )
    code = "\n".join(
        [
            "import sys, resource, subprocess",
            f"subprocess.run([sys.executable, '-c', {inner!r}], check=True)",
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "lens-bench-collect"
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-forward", action="store_true", help="only the memory runs")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="time forward passes by wall clock (default on CPU: process CPU time)",
    )
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cpu_time = args.device == "cpu" and not args.wall
    args.dir.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(args.dir / "model")
    data = make_data(args.dir / "data.txt", 2048)
    report: dict[str, object] = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": f"GptOss hidden={HIDDEN} layers={LAYERS} experts={EXPERTS} top_k={TOP_K}",
        "batch": args.batch,
        "length": args.length,
    }
    if not args.skip_forward:
        report["timing"] = "process CPU time" if cpu_time else "wall clock"
        report["forward"] = forward_overhead(
            model_dir, args.device, args.repeats, args.batch, args.length, cpu_time
        )
        small = make_data(args.dir / "small.txt", 256, seed=1)
        report["pipeline"] = pipeline_overhead(
            model_dir, small, args.device, args.batch, args.length
        )
    if not args.skip_memory:
        report["peak_rss_mib"] = {
            f"batch {batch}, {samples} samples": round(
                peak_rss_fresh(model_dir, data, batch, samples, args.device), 1
            )
            for batch, samples in ((8, 256), (8, 2048), (32, 256), (32, 2048))
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
