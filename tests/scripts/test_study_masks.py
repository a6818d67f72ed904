"""The predictor study's mask generation (scripts/sample_build/study.py) on the shipped bundles:
every criterion × source, random masks, perturbations of the best mask by exactly 1, 2, 4 swaps
per layer, seeded and reproducible, and enough masks per budget (≥ 60)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.formats.bundle import load_bundle
from core.masks.make import make_mask
from scripts.sample_build import cli
from scripts.sample_build.study import (
    STUDY_CRITERIA,
    perturbed_mask,
    random_mask,
    study_masks,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_stats"


@pytest.fixture(scope="module")
def bundles():
    return {p.stem: load_bundle(p) for p in sorted(SAMPLE.glob("*.safetensors"))}


def test_study_has_every_criterion_per_source_randoms_and_perturbations(bundles):
    r = 8
    masks = study_masks(bundles, "wiki_en", r, seed=0)
    assert len(masks) >= 60
    for name, bundle in bundles.items():
        for criterion in STUDY_CRITERIA:
            mask = masks[f"r{r}-{name}-{criterion}"]
            assert mask.criterion == criterion
            assert mask.layers == make_mask(criterion, [bundle], r=r).layers
    randoms = [m for m in masks.values() if m.criterion == "random"]
    assert len(randoms) == 8 and len({str(m.layers) for m in randoms}) == 8
    best = masks[f"r{r}-wiki_en-mass"]
    for swaps in (1, 2, 4):
        found = [masks[f"r{r}-wiki_en-mass-swap{swaps}-{i}"] for i in range(3)]
        for mask in found:
            assert mask.sources == best.sources  # counted in the set's same_data group
            for kept, original in zip(mask.layers, best.layers):
                assert len(kept) == r == len(set(kept))
                assert len(set(original) - set(kept)) == swaps  # exactly `swaps` swapped out
    for mask in masks.values():
        assert all(len(layer) == r for layer in mask.layers)


def test_study_masks_are_seeded(bundles):
    a = study_masks(bundles, "code_python", 16, seed=3)
    b = study_masks(bundles, "code_python", 16, seed=3)
    c = study_masks(bundles, "code_python", 16, seed=4)
    assert {k: m.layers for k, m in a.items()} == {k: m.layers for k, m in b.items()}
    assert a["r16-random-0"].layers != c["r16-random-0"].layers
    assert any(len(layer) == 16 for layer in a["r16-code_python-mass-swap4-0"].layers)


def test_random_and_perturbed_masks_by_hand(bundles):
    template = make_mask("mass", [bundles["wiki_en"]], r=4)
    rng = np.random.default_rng(0)
    counts = np.zeros(template.num_experts)
    for _ in range(300):
        for layer in random_mask(template, 4, rng).layers:
            counts[layer] += 1
    share = counts / counts.sum()  # uniform: every expert about 1/E
    assert np.abs(share - 1 / template.num_experts).max() < 0.02
    with pytest.raises(ValueError, match="cannot swap 5"):
        perturbed_mask(template, 5, rng)


def test_the_second_budget_is_an_option():
    assert cli.parse_args(["evaluate"]).study_r2 == 16
    assert cli.parse_args(["evaluate", "--study-r2", "12"]).study_r2 == 12
