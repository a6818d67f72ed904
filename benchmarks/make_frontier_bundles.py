"""Synthetic bundles shaped like today's largest MoE models, for app benchmarks and snapshots.

    python benchmarks/make_frontier_bundles.py --out /tmp/frontier
    python benchmarks/make_frontier_bundles.py --out /tmp/small --bundles 3 --samples 500

Defaults: 12 bundles of L = 61 MoE layers, E = 384 experts, top-8 (the
Kimi-K2 / DeepSeek-V3 class), N = 5,000 samples each, every SPEC tensor
(prob_sum, energy_sum, topk_count, weight_sum, act_norm_sum, act_sqnorm_sum,
reap_sum, reap_literal_sum, reap_literal_count): about 3.3 GB a bundle, 39 GB in all (``--tensors`` writes fewer).
Each file goes through the project's own streaming bundle writer, so it is
validated and written atomically; memory holds one bundle's router
probabilities and top-k counts (~0.7 GB at the defaults) plus a block of samples.

Why the numbers are not trivial to compare: routing is drawn in log space as

    popularity[d, l] = base[l] + domain[c(d), l] + own[d, l]

where ``base`` is the model's own skew (shared by every dataset), ``domain``
is shared by datasets of one domain (web English, multilingual, chat, code,
math) and ``own`` is the dataset's. The domain and own terms grow with depth
(early layers route alike whatever the text; late layers specialise) and two
layers are made odd on purpose (much larger divergence), as real models have.
Each sample's mean router distribution is its dataset's signature times
log-normal topic noise that shrinks with the sample's token count, so the
top-r mask settles only after a few hundred samples (ablation curves have a
shape). The noise is logistic-normal rather than a per-sample Dirichlet: a
Dirichlet needs one gamma draw per (sample, layer, expert), ten times slower
at 117 M entries a bundle, and in log space the model, domain and dataset
terms simply add. With the defaults, mean JS between datasets of one domain
is ~0.03 bits, across domains ~0.13, against a split-half floor of ~0.002;
N_eff runs from ~265 of 384 in the first layer to ~60 in the last. Routed statistics follow from it: top-k selection is the router
distribution sharpened and capped at 1/k per expert (Σ_e topk_count = k·T),
gate weights favour the more probable experts (Σ_e weight_sum = T, never more
than the count), and expert-output norms have a per-layer, per-expert scale
that grows with depth and shifts a little by domain, so Pearson of energy
differs between datasets too. Everything is seeded: the same command writes
the same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.formats.bundle import (  # noqa: E402
    OPTIONAL_TENSORS,
    REQUIRED_TENSORS,
    bundle_metadata,
    write_bundle_streaming,
)

#: (dataset, domain, mean token count): twelve calibration sets a pruner might weigh.
DATASETS = (
    ("c4_en", "web_en", 620),
    ("fineweb_en", "web_en", 700),
    ("wiki_en", "web_en", 900),
    ("news_de", "multilingual", 650),
    ("wiki_zh", "multilingual", 800),
    ("chat_ja", "multilingual", 300),
    ("chat_en", "chat", 350),
    ("code_python", "code", 1400),
    ("code_rust", "code", 1500),
    ("code_js", "code", 1200),
    ("math_gsm8k", "math", 250),
    ("math_proofs", "math", 1100),
)
DOMAINS = ("web_en", "multilingual", "chat", "code", "math")
TENSORS = tuple(REQUIRED_TENSORS) + tuple(OPTIONAL_TENSORS)
SHARPEN = 1.6  # top-k picks the probable experts more often than p alone says
WEIGHT_BIAS = 0.5  # gate weights grow with p^0.5 among the selected experts
NORM_CV = 0.3  # spread of ‖y‖ within one (sample, expert): E‖y‖² = (E‖y‖)²(1 + cv²)
MAX_TOKENS = 4096
BLOCK = 128  # samples per block: [128, 61, 384] float32 temporaries stay ~12 MB each


@dataclass(frozen=True)
class Shape:
    layers: int
    experts: int
    top_k: int
    samples: int


@dataclass(frozen=True)
class ModelDraw:
    """What every dataset of one synthetic model shares."""

    base: np.ndarray  # [L, E] log popularity
    domain: np.ndarray  # [domains, L, E]
    spread: np.ndarray  # [L] scale of domain/own divergence per layer
    norm_scale: np.ndarray  # [L, E] typical ‖y‖ per expert
    norm_domain: np.ndarray  # [domains, L, E] log shift of ‖y‖ by domain


def draw_model(shape: Shape, seed: int) -> ModelDraw:
    rng = np.random.default_rng([seed, 0])
    layers, experts = shape.layers, shape.experts
    depth = np.linspace(0.0, 1.0, layers)
    base = rng.normal(size=(layers, experts)) * (0.6 + 0.4 * depth)[:, None]
    spread = 0.15 + 0.85 * depth**1.5
    odd = [min(3, layers - 1), max(layers - 2, 0)]
    spread[odd] = 1.6  # the odd layers a per-layer view should make stand out
    domain = rng.normal(size=(len(DOMAINS), layers, experts))
    norm_scale = np.exp(
        np.log(2.0 + 6.0 * depth)[:, None] + 0.35 * rng.normal(size=(layers, experts))
    )
    norm_domain = 0.15 * rng.normal(size=(len(DOMAINS), layers, experts))
    return ModelDraw(base, domain, spread, norm_scale, norm_domain)


@dataclass(frozen=True)
class DatasetDraw:
    """One bundle's signature and samples (``probs`` held: every tensor derives from it)."""

    name: str
    domain: str
    token_count: np.ndarray  # [N] int64
    probs: np.ndarray  # [N, L, E] float32, each row a distribution over experts
    counts: np.ndarray  # [N, L, E] int16 topk_count (a count never exceeds T <= 4096)
    norms: np.ndarray  # [L, E] this dataset's typical ‖y‖
    sample_norm: np.ndarray  # [N, L] per-sample scale of ‖y‖


def draw_dataset(model: ModelDraw, shape: Shape, index: int, seed: int) -> DatasetDraw:
    name, domain, mean_tokens = DATASETS[index % len(DATASETS)]
    if index >= len(DATASETS):
        name = f"{name}_{index // len(DATASETS) + 1}"
    rng = np.random.default_rng([seed, 1, index])
    c = DOMAINS.index(domain)
    own = rng.normal(size=(shape.layers, shape.experts))
    logits = model.base + model.spread[:, None] * (model.domain[c] + 0.45 * own)
    signature = np.exp(logits - logits.max(axis=1, keepdims=True))
    signature /= signature.sum(axis=1, keepdims=True)  # [L, E]
    tokens = rng.lognormal(np.log(mean_tokens), 0.6, size=shape.samples)
    token_count = np.clip(np.rint(tokens), 8, MAX_TOKENS).astype(np.int64)
    # A sample's mean routing is its dataset's signature times log-normal topic
    # noise that shrinks as the sample grows (more tokens average out more).
    noise = np.clip(0.9 * np.sqrt(512.0 / token_count), 0.2, 2.0).astype(np.float32)  # [N]
    log_signature = np.log(signature).astype(np.float32)
    shape3 = (shape.samples, shape.layers, shape.experts)
    probs = np.empty(shape3, dtype=np.float32)
    counts = np.empty(shape3, dtype=np.int16)
    for start in range(0, shape.samples, BLOCK):
        stop = min(start + BLOCK, shape.samples)
        z = rng.standard_normal((stop - start, shape.layers, shape.experts), dtype=np.float32)
        z *= noise[start:stop, None, None]
        z += log_signature[None]
        z -= z.max(axis=2, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=2, keepdims=True)
        probs[start:stop] = z
        counts[start:stop] = _counts(z, token_count[start:stop], shape.top_k, rng)
    norms = model.norm_scale * np.exp(
        model.norm_domain[c] + 0.08 * rng.normal(size=(shape.layers, shape.experts))
    )
    sample_norm = np.exp(0.1 * rng.normal(size=(shape.samples, shape.layers)))
    return DatasetDraw(name, domain, token_count, probs, counts, norms, sample_norm)


def _selection(p: np.ndarray, top_k: int) -> np.ndarray:
    """Per-token chance each expert is in the top-k: p sharpened, capped at 1 (sum k)."""
    s = p**SHARPEN
    s *= top_k / s.sum(axis=-1, keepdims=True)
    for _ in range(4):  # water-fill: an expert is picked at most once a token
        if not (s > 1.0).any():
            break
        np.minimum(s, 1.0, out=s)
        free = s < 1.0
        room = top_k - s.sum(axis=-1, keepdims=True)
        movable = np.where(free, s, 0.0)
        s += movable * room / np.maximum(movable.sum(axis=-1, keepdims=True), 1e-30)
    return np.minimum(s, 1.0)


def _counts(
    p: np.ndarray, token_count: np.ndarray, top_k: int, rng: np.random.Generator
) -> np.ndarray:
    """topk_count rows: expected counts, stochastically rounded, fixed to sum k·T exactly."""
    tokens = token_count[:, None, None]
    expected = tokens * _selection(p, top_k)
    counts = np.floor(expected)
    counts += rng.random(expected.shape, dtype=np.float32) < (expected - counts)
    counts = np.minimum(counts, tokens).astype(np.int64)
    short = tokens[..., 0] * top_k - counts.sum(axis=-1)  # [B, L], a few at most
    # Put the difference on the experts with the most room (never above T, never below 0).
    order = np.argsort(np.where(short[..., None] > 0, counts - tokens, -counts), axis=-1)
    rows, layers = np.indices(short.shape)
    for j in range(min(int(np.abs(short).max(initial=0)), p.shape[-1])):
        counts[rows, layers, order[..., j]] += np.sign(short) * (np.abs(short) > j)
    return counts


def _block(name: str, data: DatasetDraw, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one tensor."""
    tokens = data.token_count[start:stop]
    if name == "token_count":
        return tokens
    if name == "example_ids":
        return np.arange(start, stop, dtype=np.int64)
    p = data.probs[start:stop]
    if name == "prob_sum":
        return p * tokens[:, None, None].astype(np.float32)
    counts = data.counts[start:stop].astype(np.float32)
    if name in ("topk_count", "reap_literal_count"):
        # REAP's literal pick (top-k of the raw logits) is the model's own for softmax routers.
        return data.counts[start:stop].astype(np.int32)
    favour = counts * p**WEIGHT_BIAS
    total = np.maximum(favour.sum(axis=-1, keepdims=True), np.float32(1e-30))
    weight = tokens[:, None, None].astype(np.float32) * favour / total
    weight = np.minimum(weight, counts)  # a gate weight is at most 1
    if name == "weight_sum":
        return weight.astype(np.float32)
    norm = data.norms[None] * data.sample_norm[start:stop, :, None]  # [B, L, E] mean ‖y‖
    square = norm**2 * (1.0 + NORM_CV**2)
    values = {
        "act_norm_sum": lambda: counts * norm,
        "act_sqnorm_sum": lambda: counts * square,
        "reap_sum": lambda: weight * norm,
        # REAP-literal weighs each routed slot by its full-E softmax probability (no renorm).
        "reap_literal_sum": lambda: counts * p * norm,
        "energy_sum": lambda: weight * (weight / np.maximum(counts, 1)) * square,
    }
    return values[name]().astype(np.float32)


def _blocks(names: list[str], data: DatasetDraw) -> Iterator[tuple[str, np.ndarray]]:
    samples = len(data.token_count)
    for name in names:
        for start in range(0, samples, BLOCK):
            yield name, _block(name, data, start, min(start + BLOCK, samples))


def write_frontier_bundle(
    folder: Path, model: ModelDraw, shape: Shape, index: int, seed: int, names: list[str]
) -> Path:
    """Draw dataset ``index`` and stream its bundle into ``folder``; returns the path."""
    data = draw_dataset(model, shape, index, seed)  # probs and counts: ~0.7 GB at full size
    dtypes = {**REQUIRED_TENSORS, **OPTIONAL_TENSORS}
    per_expert = (shape.samples, shape.layers, shape.experts)
    layout = {
        name: (
            dtypes[name],
            (shape.samples,) if name in ("token_count", "example_ids") else per_expert,
        )
        for name in names
    }
    metadata = bundle_metadata(
        model=f"synthetic-frontier-L{shape.layers}-E{shape.experts}",
        dataset=data.name,
        num_layers=shape.layers,
        num_experts=shape.experts,
        top_k=shape.top_k,
        synthetic="true",
        domain=data.domain,
        generator="benchmarks/make_frontier_bundles.py",
        seed=str(seed),
        max_length=str(MAX_TOKENS),
    )
    path = folder / f"{data.name}.safetensors"
    return write_bundle_streaming(path, layout, _blocks(names, data), metadata)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the bundles")
    parser.add_argument("--bundles", type=int, default=12)
    parser.add_argument("--layers", type=int, default=61)
    parser.add_argument("--experts", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tensors",
        default="all",
        help="comma-separated optional tensors to write besides prob_sum, token_count and "
        "example_ids (e.g. energy_sum), 'all' (default) or 'none'",
    )
    args = parser.parse_args(argv)
    for name in ("bundles", "layers", "experts", "top_k", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.top_k > args.experts:
        parser.error("--top-k cannot exceed --experts")
    if args.tensors == "all":
        args.names = list(TENSORS)
    else:
        wanted = [] if args.tensors == "none" else [t for t in args.tensors.split(",") if t]
        unknown = [t for t in wanted if t not in OPTIONAL_TENSORS]
        if unknown:
            parser.error(
                f"--tensors: unknown {unknown[0]!r} (choose from {list(OPTIONAL_TENSORS)})"
            )
        args.names = list(REQUIRED_TENSORS) + [t for t in OPTIONAL_TENSORS if t in wanted]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shape = Shape(args.layers, args.experts, args.top_k, args.samples)
    args.out.mkdir(parents=True, exist_ok=True)
    model = draw_model(shape, args.seed)
    total = 0
    started = time.perf_counter()
    for index in range(args.bundles):
        begun = time.perf_counter()
        path = write_frontier_bundle(args.out, model, shape, index, args.seed, args.names)
        size = path.stat().st_size
        total += size
        print(
            f"{path}  {size / 2**20:,.1f} MiB  {time.perf_counter() - begun:.1f} s",
            file=sys.stderr,
        )
    print(
        f"{args.bundles} bundles (L={args.layers}, E={args.experts}, top-{args.top_k}, "
        f"N={args.samples}) in {args.out}: {total / 2**30:.2f} GiB, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
