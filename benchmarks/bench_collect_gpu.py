"""Collection throughput and memory at gpt-oss-20b scale, on one GPU, with no download.

Run on a CUDA machine (torch with CUDA, transformers; ~60 GiB of GPU memory at the
defaults: 39 GiB of weights, the rest mostly eager attention scores):

    python benchmarks/bench_collect_gpu.py --out gpu.json

and on any machine, at tiny dimensions (seconds on a CPU, not representative):

    python benchmarks/bench_collect_gpu.py --tiny --device cpu --out tiny.json

The model is ``GptOssForCausalLM`` with gpt-oss-20b's published configuration
(24 layers, 32 experts, top-4, hidden 2880, expert size 2880, 64 query and
8 key/value heads of 64, alternating 128-token sliding and full attention,
vocabulary 201,088, YaRN RoPE), built directly on the device in the requested
dtype with random weights: the timing of a forward pass does not depend on the
weights' values, only on the shapes (routing of a random router is close to
uniform, so the grouped expert matmuls are balanced; a trained router would
skew them a little). Inputs are random token ids, every sequence exactly
``--seq-len`` long (no padding), deterministic from ``--seed``.

Four modes run over the same batches, each on the model's backbone (no LM
head, as ``lens collect`` runs it), each under ``torch.inference_mode``:

- ``plain``: the forward pass alone (the floor, ratio 1);
- ``router_logits``: ``output_router_logits=True``, every layer's [T, E]
  logits copied to the host (transformers' built-in way to see routing: no
  top-k indices, weights or expert-output norms);
- ``router_only``: ``lens collect --no-energy``'s batch job (the collection
  runner's own padding, backbone call and :class:`RouterCapture`: prob_sum,
  topk_count, weight_sum reduced per sample on the device, copied to the host);
- ``all``: ``lens collect``'s batch job with every statistic (expert-output
  norms too: energy, act_norm, act_sqnorm, reap).

A fifth row, ``stream_layers``, is ``lens collect --stream-layers`` on the
same model: the model is saved to a checkpoint folder (``--stream-dir``, or a
temporary folder; at the defaults ~39 GiB of disk plus ~6 GiB of hidden
states between layers), the in-memory model is freed, and the collection
command's own code (:func:`core.collect.runner.run_collection`) collects the
same token ids from a text file through a word-level tokenizer that maps
``t{id}`` to ``id`` (special tokens have their own names). Its time is the whole command (tokenizing, reading every
layer from disk, hidden states to disk and back, writing the bundle), with no
warm-up; its peak memory holds one layer's weights and one batch, not the
model. ``--no-stream`` leaves the row out.

Each mode first runs one warm-up batch (not timed: kernel selection, caches),
then every batch, timed with a device synchronize on both sides; with
``--repeats N`` the modes run in N interleaved rounds (warm-up in the first
only) and the median round is reported, so drift hits every mode alike. Peak GPU
memory is ``torch.cuda.max_memory_allocated`` with the peak reset before each
mode (weights included; ``peak_above_weights`` subtracts what was allocated
before the mode started). On a CPU, memory is not reported (``null``): RSS
peaks cannot be reset between modes in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODES = ("plain", "router_logits", "router_only", "all")
STREAM = "stream_layers"
MODE_LABELS = {
    "plain": "(a) plain forward",
    "router_logits": "(b) output_router_logits=True",
    "router_only": "(c) lens collect, router only (--no-energy)",
    "all": "(d) lens collect, every statistic",
    STREAM: "(e) lens collect --stream-layers (from disk)",
}

#: gpt-oss-20b's config.json (openai/gpt-oss-20b), less its MXFP4 quantisation block:
#: transformers' GptOssConfig defaults are gpt-oss-120b's (36 layers, 128 experts).
GPT_OSS_20B: dict[str, Any] = {
    "num_hidden_layers": 24,
    "num_local_experts": 32,
    "num_experts_per_tok": 4,
    "hidden_size": 2880,
    "intermediate_size": 2880,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "vocab_size": 201088,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_parameters": {
        "rope_type": "yarn",
        "factor": 32.0,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "truncate": False,
        "original_max_position_embeddings": 4096,
        "rope_theta": 150000.0,
    },
    "attention_bias": True,
    "swiglu_limit": 7.0,
    "router_aux_loss_coef": 0.9,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
    "pad_token_id": 199999,
    "bos_token_id": 199998,
    "eos_token_id": 200002,
}

#: The same architecture at dimensions a CPU runs in seconds (for the test suite).
TINY: dict[str, Any] = {
    **GPT_OSS_20B,
    "num_hidden_layers": 2,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "hidden_size": 64,
    "intermediate_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "sliding_window": 16,
    "layer_types": ["sliding_attention", "full_attention"],
    "vocab_size": 512,
    "max_position_embeddings": 4096,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
TINY_RUN = {"sequences": 8, "seq_len": 64, "batch_size": 4}
FULL_RUN = {"sequences": 256, "seq_len": 2048, "batch_size": 8}


@dataclass
class ModeResult:
    """What one mode measured (timed batches only)."""

    mode: str
    tokens: int
    seconds: float
    peak_bytes: int | None
    peak_above_weights_bytes: int | None
    #: per-sample statistics of the capture modes, [sequences, L, E] per name, batch order
    stats: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--sequences", type=int, default=None, help="default 256 (--tiny: 8)")
    parser.add_argument("--seq-len", type=int, default=None, help="default 2048 (--tiny: 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 (--tiny: 4)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="2 layers, hidden 64, 8 experts, top-2, vocabulary 512: runs on a CPU in seconds",
    )
    parser.add_argument(
        "--attn-implementation",
        default=None,
        help="passed to transformers (e.g. eager, kernels-community/vllm-flash-attn3); "
        "default: transformers' own choice",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds over every mode, interleaved; the median round is reported (default 1)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-stream", action="store_true", help="leave out the --stream-layers row"
    )
    parser.add_argument(
        "--stream-dir",
        type=Path,
        default=None,
        help="where the --stream-layers row saves the model (default: a temporary folder; "
        "needs the model's size in free disk)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = parser.parse_args(argv)
    defaults = TINY_RUN if args.tiny else FULL_RUN
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("sequences", "seq_len", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def build_model(
    dims: dict[str, Any], device: str, dtype: str, attn_implementation: str | None = None
) -> Any:
    """A randomly initialised ``GptOssForCausalLM`` built on ``device`` (no host copy)."""
    import torch
    from transformers import AutoModelForCausalLM, GptOssConfig

    config = GptOssConfig(**dims)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    model.eval()
    model.requires_grad_(False)
    return model


def make_batches(
    vocab_size: int, sequences: int, seq_len: int, batch_size: int, seed: int
) -> list[list[np.ndarray]]:
    """Random token ids, as the runner holds them (int32 arrays), cut into batches."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, vocab_size, size=(sequences, seq_len), dtype=np.int64).astype(np.int32)
    rows = list(ids)
    return [rows[start : start + batch_size] for start in range(0, sequences, batch_size)]


class _Pad:
    """The two tokenizer attributes the runner's padder reads (no tokenizer exists here)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id
        self.padding_side = "right"


def collect_job(model: Any, energy: bool, batch_size: int) -> Any:
    """The collection runner's own batch job: padding, backbone call and RouterCapture."""
    from core.collect.config import CollectConfig
    from core.collect.runner import _BatchJob
    from core.families.layers import find_moe_layers

    config = CollectConfig.from_settings(
        model="random-init gpt-oss",
        data="random token ids",
        out=Path("unused.safetensors"),  # the job never writes
        energy=energy,
        batch_size=batch_size,
    )
    tokenizer = _Pad(model.config.pad_token_id or 0)
    return _BatchJob(model, tokenizer, find_moe_layers(model), config)


def run_mode(
    mode: str, model: Any, batches: list[list[np.ndarray]], device: Any, warmup: bool = True
) -> ModeResult:
    """Warm up on the first batch (unless told not to), then time every batch of one mode."""
    import torch

    from core.model.batching import BatchPadder, backbone_of

    cuda = device.type == "cuda"
    backbone = backbone_of(model) or model
    job = None
    if mode in ("router_only", "all"):
        job = collect_job(model, energy=mode == "all", batch_size=len(batches[0]))
        job.__enter__()
        step = job.run
    else:
        padder = BatchPadder(backbone, _Pad(model.config.pad_token_id or 0))

        def step(sequences: list[np.ndarray]) -> None:
            inputs, _, _ = padder.pad(sequences)
            with torch.inference_mode():
                if mode == "router_logits":
                    out = backbone(**inputs, output_router_logits=True)
                    _ = [logits.cpu() for logits in out.router_logits]
                else:
                    backbone(**inputs)

    try:
        if warmup:
            step(batches[0])  # not timed: kernel selection, allocator, caches
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        collected: list[dict[str, np.ndarray]] = []
        tokens = 0
        start = time.perf_counter()
        for sequences in batches:
            result = step(sequences)
            tokens += sum(len(s) for s in sequences)
            if result is not None:
                collected.append(result[0])
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    finally:
        if job is not None:
            job.__exit__(None, None, None)
    peak = above = None
    if cuda:
        peak = int(torch.cuda.max_memory_allocated(device))
        above = peak - int(before)
    stats = (
        {name: np.concatenate([c[name] for c in collected]) for name in collected[0]}
        if collected
        else {}
    )
    return ModeResult(mode, tokens, seconds, peak, above, stats)


def write_stream_inputs(model: Any, batches: list[list[np.ndarray]], folder: Path) -> Path:
    """Save ``model`` with a tokenizer that maps ``t{id}`` to ``id``, and the batches as text.

    The collection command reads a checkpoint folder and a text file; this
    word-level tokenizer (no special tokens added) gives it back exactly the
    token ids the in-memory modes ran, one sequence per line. Returns the data file.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), max_shard_size="2GB")
    config = model.config
    # Special tokens get names no word contains (the tokenizer matches them inside words).
    special: dict[str, str] = {}
    names: dict[int, str] = {}
    for role in ("pad", "bos", "eos"):
        token_id = getattr(config, f"{role}_token_id", None) or 0
        special[f"{role}_token"] = names.setdefault(token_id, f"<|{role}|>")
    words = [names.get(i, f"t{i}") for i in range(config.vocab_size)]
    word_level = Tokenizer(
        models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0])
    )
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=word_level, **special).save_pretrained(str(folder))
    data = folder / "token-ids.txt"
    lines = (" ".join(words[int(t)] for t in seq) for batch in batches for seq in batch)
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data


def run_streaming(
    args: argparse.Namespace, folder: Path, data: Path, tokens: int, device: Any
) -> ModeResult:
    """``lens collect --stream-layers`` over the saved model: the whole command, timed."""
    import torch

    from core.collect.config import CollectConfig
    from core.collect.runner import run_collection
    from core.formats.bundle import load_bundle

    out = folder / "streamed.safetensors"
    out.unlink(missing_ok=True)
    config = CollectConfig.from_settings(
        model=str(folder),
        data=str(data),
        out=out,
        batch_size=args.batch_size,
        max_length=args.seq_len,
        device=args.device,
        dtype=args.dtype,
        stream_layers=True,
    )
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    run_collection(config)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = above = None
    if cuda:
        peak = int(torch.cuda.max_memory_allocated(device))
        above = peak - int(before)
    bundle = load_bundle(out)
    stats = {name: np.asarray(bundle.tensors[name]) for name in bundle.tensors}
    return ModeResult(STREAM, tokens, seconds, peak, above, stats)


def _progress(result: ModeResult) -> None:
    """One line on stderr per finished mode: a long GPU run shows where it is."""
    peak = "" if result.peak_bytes is None else f", peak {result.peak_bytes / 2**30:.1f} GiB"
    print(
        f"{result.mode}: {result.tokens} tokens in {result.seconds:.1f} s "
        f"({result.tokens_per_s:,.0f} tokens/s{peak})",
        file=sys.stderr,
        flush=True,
    )


def _median_round(runs: list[ModeResult]) -> ModeResult:
    """The round of median time, with the highest peak memory of all rounds."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    chosen = ordered[(len(ordered) - 1) // 2]
    peaks = [r.peak_bytes for r in runs if r.peak_bytes is not None]
    above = [r.peak_above_weights_bytes for r in runs if r.peak_above_weights_bytes is not None]
    return ModeResult(
        chosen.mode,
        chosen.tokens,
        chosen.seconds,
        max(peaks) if peaks else None,
        max(above) if above else None,
        runs[0].stats,
    )


def run_benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, ModeResult]]:
    """Build the model, run every mode over the same batches; the report and raw results."""
    import torch
    import transformers

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine")
    dims = TINY if args.tiny else GPT_OSS_20B
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    model = build_model(dims, args.device, args.dtype, args.attn_implementation)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    build_s = time.perf_counter() - started
    batches = make_batches(
        dims["vocab_size"], args.sequences, args.seq_len, args.batch_size, args.seed
    )
    rounds: dict[str, list[ModeResult]] = {mode: [] for mode in MODES}
    for round_index in range(args.repeats):  # modes interleaved: drift hits them alike
        for mode in MODES:
            rounds[mode].append(run_mode(mode, model, batches, device, warmup=round_index == 0))
            _progress(rounds[mode][-1])
    parameters = sum(p.numel() for p in model.parameters())
    attn, experts = (
        model.config._attn_implementation,
        getattr(model.config, "_experts_implementation", None),
    )
    if not args.no_stream:
        with tempfile.TemporaryDirectory(dir=args.stream_dir) as scratch:
            folder = Path(scratch) / "model"
            data = write_stream_inputs(model, batches, folder)
            del model  # the streamed row holds one layer at a time, not the model
            if device.type == "cuda":
                torch.cuda.empty_cache()
            tokens = sum(len(seq) for batch in batches for seq in batch)
            rounds[STREAM] = []
            for _ in range(args.repeats):
                rounds[STREAM].append(run_streaming(args, folder, data, tokens, device))
                _progress(rounds[STREAM][-1])
    results = {mode: _median_round(runs) for mode, runs in rounds.items()}
    plain = results["plain"]
    modes = {}
    for mode, result in results.items():
        modes[mode] = {
            "label": MODE_LABELS[mode],
            "tokens": result.tokens,
            "seconds": result.seconds,
            "tokens_per_s": result.tokens_per_s,
            "throughput_ratio": result.tokens_per_s / plain.tokens_per_s,
            "peak_memory_bytes": result.peak_bytes,
            "peak_above_weights_bytes": result.peak_above_weights_bytes,
            "peak_memory_ratio": (
                result.peak_bytes / plain.peak_bytes
                if result.peak_bytes is not None and plain.peak_bytes
                else None
            ),
        }
    capture = results["all"].stats
    report = {
        "benchmark": "bench_collect_gpu",
        "model": "GptOssForCausalLM, random init, "
        + ("tiny dimensions" if args.tiny else "gpt-oss-20b configuration"),
        "config": {k: v for k, v in dims.items() if k != "layer_types"},
        "parameters": parameters,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "attn_implementation": attn,
        "experts_implementation": experts,
        "sequences": args.sequences,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "repeats": args.repeats,
        "build_seconds": build_s,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "modes": modes,
        "capture_check": {
            "tokens": results["all"].tokens,
            "topk_count_per_layer": capture["topk_count"].sum(axis=(0, 2)).tolist(),
            "expected_per_layer": results["all"].tokens * dims["num_experts_per_tok"],
            **(
                {"stream_topk_count_per_layer": stream_counts(results[STREAM])}
                if STREAM in results
                else {}
            ),
        },
    }
    return report, results


def stream_counts(result: ModeResult) -> list[int]:
    """Routed tokens per layer in the streamed bundle (every token, top-k times)."""
    return result.stats["topk_count"].sum(axis=(0, 2)).astype(int).tolist()


def markdown_table(report: dict[str, Any]) -> str:
    """The report's modes as a markdown table (ratios to the plain forward)."""

    def gib(value: int | None) -> str:
        return "n/a" if value is None else f"{value / 2**30:.2f} GiB"

    lines = [
        "| mode | tokens/s | × plain | peak memory | above weights | × plain |",
        "|---|---|---|---|---|---|",
    ]
    for entry in report["modes"].values():
        ratio = entry["peak_memory_ratio"]
        lines.append(
            f"| {entry['label']} | {entry['tokens_per_s']:,.0f} | "
            f"{entry['throughput_ratio']:.3f} | {gib(entry['peak_memory_bytes'])} | "
            f"{gib(entry['peak_above_weights_bytes'])} | "
            f"{'n/a' if ratio is None else f'{ratio:.3f}'} |"
        )
    return "\n".join(lines)


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Atomically: a half-written report is never left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report, _ = run_benchmark(args)
    print(
        f"{report['model']}, {report['parameters']:,} parameters on "
        f"{report['device_name']} ({report['dtype']}, attention "
        f"{report['attn_implementation']}, experts {report['experts_implementation']}); "
        f"{args.sequences} sequences × {args.seq_len} tokens, batch {args.batch_size}, "
        f"median of {args.repeats} round(s)"
    )
    print(markdown_table(report))
    if args.out is not None:
        write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
