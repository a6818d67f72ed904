"""Fixtures for evaluation tests: tiny random checkpoints and one briefly trained GPT-OSS."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.tiny_models import build_tiny_model  # noqa: E402
from tests.trained_models import domain_texts, train_tiny_gpt_oss, write_texts  # noqa: E402

#: Texts of varied lengths, so batches need padding (and one with a single token or so).
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Experts.",
    "Mixture-of-experts models route every token to a few experts, and calibration decides.",
    "El rápido zorro marrón salta sobre el perro perezoso y sigue corriendo por el campo.",
    "def add(a, b):    return a + b",
    "快速的棕色狐狸跳过了懒狗。",
    "Router probabilities are summed per sample and per layer.",
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``tiny_model(family)`` -> folder of a saved tiny random model (built once per session)."""
    cache: dict[str, Path] = {}

    def build(family: str) -> Path:
        if family not in cache:
            folder = tmp_path_factory.mktemp(family)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[family] = build_tiny_model(family, folder)
        return cache[family]

    return build


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A trained tiny GPT-OSS plus calibration and held-out files of each domain.

    ``{"model": folder, "calib_en": path, "heldout_en": path, ...}``.
    """
    root = tmp_path_factory.mktemp("trained")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = train_tiny_gpt_oss(root / "gpt_oss", seed=0)
    out = {"model": folder}
    calibration, heldout = domain_texts(500, 24), domain_texts(999, 24)
    for domain in calibration:
        out[f"calib_{domain}"] = write_texts(root / f"calib_{domain}.txt", calibration[domain])
        out[f"heldout_{domain}"] = write_texts(root / f"heldout_{domain}.txt", heldout[domain])
    return out


@pytest.fixture
def text_file(tmp_path) -> Path:
    return write_texts(tmp_path / "texts.txt", TEXTS)
