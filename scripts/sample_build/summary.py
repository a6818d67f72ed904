"""Stage 5 (``summary``): the bundles read back with the engine, into ``summary.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core import engine
from core import metrics as m
from core.ablation import ablate
from core.formats.bundle import find_bundles

from .settings import CALIBRATION_SETS, MODEL_DIR, OUT_DIR, WORK
from .uncertainty_summary import uncertainty_section


def split_half_floor(profile_bundle, r: int, seed: int = 0) -> dict[str, float]:
    """JS / Jaccard between two random halves of one bundle: the sampling-noise floor."""
    ps, tc = np.asarray(profile_bundle.prob_sum), np.asarray(profile_bundle.token_count)
    order = np.random.default_rng(seed).permutation(len(tc))
    a, b = order[: len(tc) // 2], order[len(tc) // 2 :]
    pa, pb = m.signature(ps[a], tc[a]), m.signature(ps[b], tc[b])
    return {
        "js_divergence": float(np.mean(m.js_divergence(pa, pb))),
        "jaccard": float(np.mean(m.jaccard(m.proxy_mask(pa, r), m.proxy_mask(pb, r)))),
    }


def summarise(folder: Path, r: int) -> dict:
    profiles = [engine.Profile.load(p) for p in find_bundles([folder])]
    order = {name: i for i, name in enumerate(CALIBRATION_SETS)}
    profiles.sort(key=lambda p: order.get(p.name, len(order)))
    E = profiles[0].num_experts
    sets = {}
    for p in profiles:
        uni = engine.stats(p).to_json()
        abl = ablate(p, r=r, step=8, seed=0)
        convergence = {
            "counts": abl.counts,
            "to_final": [round(x, 3) for x in abl.to_final],
            "converged_at_0.95": abl.converged_at(0.95),
        }
        sets[p.name] = {
            "samples": p.bundle.num_samples,
            "tokens": p.tokens,
            "n_eff_per_layer": [round(row["n_eff"], 2) for row in uni["layers"]],
            "n_eff_mean": round(uni["mean"]["n_eff"], 2),
            # share of the set's own routing mass inside its own top-r mask: the ceiling
            # for any retained mass into this set
            "own_top_r_mass": round(m.layer_mean(m.retained_mass(p.mask(r), p.prob)), 4),
            "entropy_bits_per_layer": [round(row["entropy_bits"], 3) for row in uni["layers"]],
            "split_half": split_half_floor(p.bundle, r),
            "ablation": convergence,
        }
    pairs = {}
    for i, a in enumerate(profiles):
        for b in profiles[i + 1 :]:
            mean = engine.compare(a, b, r).mean
            pairs[f"{a.name}|{b.name}"] = {
                k: (None if v is None else round(v, 4)) for k, v in mean.items()
            }
    # The untrained baseline (same architecture, seeded initialisation; not shipped).
    untrained: dict = {"sets": {}, "pairs": {}}
    base = [engine.Profile.load(p) for p in sorted((WORK / "untrained").glob("*.safetensors"))]
    for p in base:
        untrained["sets"][p.name] = {
            "n_eff_per_layer": [round(x["n_eff"], 2) for x in engine.stats(p).to_json()["layers"]],
            "split_half": split_half_floor(p.bundle, r),
        }
    for i, a in enumerate(base):
        for b in base[i + 1 :]:
            mean = engine.compare(a, b, r).mean
            untrained["pairs"][f"{a.name}|{b.name}"] = {
                k: (None if v is None else round(v, 4)) for k, v in mean.items()
            }
    return {
        "model": profiles[0].bundle.model,
        "num_layers": profiles[0].num_layers,
        "num_experts": E,
        "top_k": profiles[0].bundle.top_k,
        "r": r,
        "sets": sets,
        "pairs": pairs,
        "uncertainty": uncertainty_section(profiles, r),
        "untrained": untrained,
        "noise_floor_js_max": max(s["split_half"]["js_divergence"] for s in sets.values()),
    }


def print_summary(summary: dict) -> None:
    sets, pairs, E = summary["sets"], summary["pairs"], summary["num_experts"]
    print(
        f"model {summary['model']}  L={summary['num_layers']} E={E} top-k={summary['top_k']}  r={summary['r']}"
    )
    print(
        f"\n{'set':18s} {'N':>5s} {'tokens':>7s}  N_eff per layer            split-half JS  Jaccard"
    )
    for name, s in sets.items():
        neff = " ".join(f"{x:5.1f}" for x in s["n_eff_per_layer"])
        print(
            f"{name:18s} {s['samples']:5d} {s['tokens']:7d}  {neff:26s} {s['split_half']['js_divergence']:.4f}  {s['split_half']['jaccard']:.3f}"
        )
    names = list(sets)
    print("\nmean JS divergence (bits), upper triangle")
    print(" " * 18 + "".join(f"{n[:8]:>9s}" for n in names))
    for i, a in enumerate(names):
        row = [
            "" if j <= i else f"{pairs[f'{a}|{b}']['js_divergence']:.3f}"
            for j, b in enumerate(names)
        ]
        print(f"{a:18s}" + "".join(f"{x:>9s}" for x in row))


def stage_summary(args: argparse.Namespace) -> None:
    summary = summarise(OUT_DIR, args.r)
    report = MODEL_DIR / "train_report.json"
    if report.exists():
        train = json.loads(report.read_text())
        summary["training"] = {k: v for k, v in train.items() if k != "history"}
        summary["training"]["loss_first"] = train["history"][0]["loss"]
        summary["training"]["loss_last"] = train["history"][-1]["loss"]
        summary["training"]["loss_curve"] = [(h["step"], h["loss"]) for h in train["history"]]
    manifest = WORK / "corpora" / "manifest.json"
    if manifest.exists():
        summary["corpora"] = json.loads(manifest.read_text())
    previous = OUT_DIR / "summary.json"
    if previous.exists():  # the later stages' sections survive a re-run of this one
        old = json.loads(previous.read_text())
        for section in ("evaluation", "design_validation"):
            if section in old:
                summary[section] = old[section]
    write_summary(summary)
    print_summary(summary)


def write_summary(summary: dict) -> None:
    (OUT_DIR / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
