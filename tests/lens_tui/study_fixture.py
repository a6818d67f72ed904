"""A small predictor study on disk: two bundles and an evaluation whose loss follows one predictor.

The loss increase of every mask is made to fall exactly as the share of the
held-out data's energy (Σ_n energy_sum) its kept experts carry rises, computed
here by a plain loop, so ``retained_energy`` orders the masks perfectly
(ρ = −1 among the masks calibrated on the held-out data itself) and the other
predictors, built on independent random tensors, do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.formats.bundle import load_bundle
from core.formats.evaluation import Evaluation, MaskResult, write_evaluation
from core.formats.mask import Mask
from tests.conftest import make_bundle

LAYERS, EXPERTS, TOP_K, KEPT = 4, 8, 2, 4
#: Masks calibrated on the held-out data's own bundle, then on the other one.
SAME_DATA, OTHER = 8, 3


def _extra(seed: int, n: int, tokens: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1000)
    slots = np.zeros((n, LAYERS, EXPERTS), dtype=np.int32)
    for i in range(n):  # each token picks TOP_K distinct experts, as a bundle must record
        for layer in range(LAYERS):
            for _ in range(int(tokens[i])):
                slots[i, layer, rng.choice(EXPERTS, TOP_K, replace=False)] += 1
    reap = (rng.random((n, LAYERS, EXPERTS)) * tokens[:, None, None]).astype(np.float32)
    return {"token_count": tokens, "topk_count": slots, "reap_sum": reap}


def energy_share_by_hand(energy: np.ndarray, layers: list[list[int]]) -> float:
    """mean_l Σ_n Σ_{e kept} energy[n,l,e] / Σ_n Σ_e energy[n,l,e], by loops."""
    shares = []
    for layer, kept in enumerate(layers):
        whole = kept_sum = 0.0
        for i in range(energy.shape[0]):
            for e in range(energy.shape[2]):
                whole += float(energy[i, layer, e])
                if e in kept:
                    kept_sum += float(energy[i, layer, e])
        shares.append(kept_sum / whole)
    return float(np.mean(shares))


def write_study(folder: Path) -> dict[str, Path]:
    """``calib`` and ``heldout`` bundles and ``eval.json`` on ``heldout`` (11 masks)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, seed in (("heldout", 21), ("calib", 22)):
        n = 32
        tokens = np.random.default_rng(seed).integers(5, 40, size=n)
        paths[name] = make_bundle(
            folder / f"{name}.safetensors",
            n=n,
            layers=LAYERS,
            experts=EXPERTS,
            top_k=TOP_K,
            seed=seed,
            concentration=0.3,
            extra=_extra(seed, n, tokens),
        )
    energy = np.asarray(load_bundle(paths["heldout"]).get("energy_sum"), dtype=np.float64)
    rng = np.random.default_rng(5)
    results = []
    for i in range(SAME_DATA + OTHER):
        layers = [sorted(rng.choice(EXPERTS, KEPT, replace=False).tolist()) for _ in range(LAYERS)]
        source = "heldout" if i < SAME_DATA else "calib"
        mask = Mask("tiny-moe", EXPERTS, "mass", [f"{source}.safetensors"], layers, top_k=TOP_K)
        increase = 1.0 - energy_share_by_hand(energy, layers)
        results.append(
            MaskResult(
                mask, f"m{i}", 2.0 + increase, float(np.exp(2.0 + increase)), increase, 0.4, 0.9
            )  # fmt: skip
        )
    evaluation = Evaluation(
        model="tiny-moe",
        data="heldout.txt",
        dataset="heldout",
        samples=32,
        tokens=640,
        num_layers=LAYERS,
        num_experts=EXPERTS,
        top_k=TOP_K,
        baseline={"loss": 2.0, "perplexity": float(np.exp(2.0)), "top1_accuracy": 0.41},
        masks=results,
    )
    paths["eval"] = write_evaluation(folder / "eval.json", evaluation)
    return paths
