"""Peak memory and speed of ``lens prune`` on a synthetic multi-shard GPT-OSS-shaped checkpoint.

Run by hand (not part of the test suite):

    python benchmarks/bench_prune.py [--layers 12] [--experts 32] [--hidden 1024]
                                     [--intermediate 1536] [--keep 16] [--dir /tmp/lens-bench-prune]

Writes a float16 checkpoint with one MoE layer per shard (GPT-OSS tensor names
and config: fused ``gate_up_proj`` [E, H, 2I], ``down_proj`` [E, I, H], their
biases, router weight and bias, attention, embeddings), then runs, each in a
fresh process whose peak RSS is read with ``wait4``:

- ``lens prune`` (the real CLI) keeping ``--keep`` experts per layer;
- a naive baseline that loads each shard whole with ``safetensors.numpy.load_file``,
  slices it and saves it with ``save_file`` (what most pruning scripts do per
  shard; loading the whole model at once would peak at the model's size).

Reports peak RSS against the largest shard and the checkpoint size, and
throughput. The page cache is dropped for neither (warm after the first
write), so both read at memory speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.io.safetensors import OutTensor, Piece, write_safetensors  # noqa: E402


def _tensor(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> OutTensor:
    data = rng.standard_normal(shape, dtype=np.float32).astype(np.float16).tobytes()
    return OutTensor(name, "F16", shape, (Piece(len(data), data=data),))


def make_checkpoint(folder: Path, layers: int, experts: int, hidden: int, inter: int) -> None:
    if (folder / "config.json").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    vocab = 32000
    shards = [
        [
            _tensor("model.embed_tokens.weight", (vocab, hidden), rng),
            _tensor("lm_head.weight", (vocab, hidden), rng),
            _tensor("model.norm.weight", (hidden,), rng),
        ]
    ]
    for i in range(layers):
        p = f"model.layers.{i}"
        shards.append(
            [
                _tensor(f"{p}.input_layernorm.weight", (hidden,), rng),
                _tensor(f"{p}.post_attention_layernorm.weight", (hidden,), rng),
                _tensor(f"{p}.self_attn.q_proj.weight", (hidden, hidden), rng),
                _tensor(f"{p}.self_attn.o_proj.weight", (hidden, hidden), rng),
                _tensor(f"{p}.mlp.router.weight", (experts, hidden), rng),
                _tensor(f"{p}.mlp.router.bias", (experts,), rng),
                _tensor(f"{p}.mlp.experts.gate_up_proj", (experts, hidden, 2 * inter), rng),
                _tensor(f"{p}.mlp.experts.gate_up_proj_bias", (experts, 2 * inter), rng),
                _tensor(f"{p}.mlp.experts.down_proj", (experts, inter, hidden), rng),
                _tensor(f"{p}.mlp.experts.down_proj_bias", (experts, hidden), rng),
            ]
        )
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for name, tensors in zip(names, shards):
        write_safetensors(folder / name, tensors, {"format": "pt"})
        weight_map.update({t.name: name for t in tensors})
        del tensors[:]
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    config = {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "num_hidden_layers": layers,
        "num_local_experts": experts,
        "num_experts_per_tok": 4,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "vocab_size": vocab,
    }
    (folder / "config.json").write_text(json.dumps(config))


BASELINE = r"""
import json, sys
from pathlib import Path
import numpy as np
from safetensors.numpy import load_file, save_file
src, out, keep = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
for shard in sorted(src.glob("*.safetensors")):
    tensors = load_file(shard)
    for name in list(tensors):
        if ".mlp.experts." in name or ".mlp.router." in name:
            layer = int(name.split(".layers.")[1].split(".")[0])
            tensors[name] = np.ascontiguousarray(tensors[name][keep[layer]])
    save_file(tensors, out / shard.name, metadata={"format": "pt"})
    del tensors
"""


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{argv[:4]} failed with status {status}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--experts", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=1536)
    parser.add_argument("--keep", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lens-bench-prune"))
    parser.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    source = args.dir / "model"
    if args.make_only:
        make_checkpoint(source, args.layers, args.experts, args.hidden, args.intermediate)
        return
    # Built in a child process: a forked child's ru_maxrss starts at its parent's RSS, so the
    # measuring parent must stay small.
    subprocess.run([sys.executable, __file__, "--make-only", *sys.argv[1:]], check=True)
    shards = sorted(source.glob("*.safetensors"))
    size = sum(p.stat().st_size for p in shards)
    largest = max(p.stat().st_size for p in shards)
    for p in shards:  # warm the page cache alike for both runs
        with p.open("rb") as handle:
            while handle.read(1 << 24):
                pass
    rng = np.random.default_rng(1)
    keep = [
        sorted(rng.choice(args.experts, args.keep, replace=False).tolist())
        for _ in range(args.layers)
    ]
    mask = args.dir / "mask.json"
    mask.write_text(
        json.dumps(
            {
                "format": "expert-calibration-lens/mask",
                "model": str(source),
                "num_experts": args.experts,
                "criterion": "random",
                "sources": [],
                "layers": keep,
            }
        )
    )

    for name in ("pruned", "naive"):
        subprocess.run(["rm", "-rf", str(args.dir / name)], check=True)
    idle_s, idle_rss = run([sys.executable, "-c", "import core.prune.surgery, lens_tui.cli"])
    lens_s, lens_rss = run(
        [
            sys.executable,
            "-m",
            "lens_tui",
            "prune",
            "--model",
            str(source),
            "--mask",
            str(mask),
            "--out",
            str(args.dir / "pruned"),
        ]
    )
    naive_s, naive_rss = run(
        [sys.executable, "-c", BASELINE, str(source), str(args.dir / "naive"), json.dumps(keep)]
    )
    out_size = sum(p.stat().st_size for p in (args.dir / "pruned").glob("*.safetensors"))

    gib = 1024**3
    print(
        f"checkpoint: {len(shards)} shards, {size / gib:.2f} GiB, largest shard "
        f"{largest / gib:.3f} GiB; pruned {args.experts} -> {args.keep} experts: "
        f"{out_size / gib:.2f} GiB written"
    )
    print(f"python + imports alone:   peak RSS {idle_rss / 2**20:7.0f} MiB")
    for label, seconds, rss in (
        ("lens prune", lens_s, lens_rss),
        ("naive per-shard load/save", naive_s, naive_rss),
    ):
        print(
            f"{label:26s} peak RSS {rss / 2**20:7.0f} MiB = {rss / largest:5.2f} x largest "
            f"shard = {rss / size:5.3f} x checkpoint; {seconds:6.1f} s, "
            f"{size / gib / seconds:5.2f} GiB/s read"
        )


if __name__ == "__main__":
    main()
