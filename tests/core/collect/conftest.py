"""Fixtures for collection tests: tiny real-architecture checkpoints and small data files."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.tiny_models import build_tiny_model  # noqa: E402

#: Texts of varied lengths, so batches need padding.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Experts.",
    "Mixture-of-experts models route every token to a few experts, and calibration data decides which survive.",
    "El rápido zorro marrón salta sobre el perro perezoso y sigue corriendo por el campo.",
    "def add(a, b):    return a + b",
    "快速的棕色狐狸跳过了懒狗。",
    "Numbers like 3.14159 and 2.71828 appear in text too, as do dates like 2026-11-25.",
    "Router probabilities are summed per sample and per layer.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "ok",
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``tiny_model(family)`` -> folder of a saved tiny random model (built once per session)."""
    cache: dict[tuple[str, str], Path] = {}

    def build(family: str, dtype: str = "float32") -> Path:
        key = (family, dtype)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{family}-{dtype}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[key] = build_tiny_model(family, folder, dtype=dtype)
        return cache[key]

    return build


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "calib.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path
