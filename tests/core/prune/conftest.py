"""Tiny checkpoints of every supported family, built once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``tiny_model(family, shards=False)`` → folder of a saved tiny random model.

    With ``shards=True`` the weights are re-saved in several small shards with an
    index, as large checkpoints are.
    """
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("tiny_models")
    built: dict[tuple, Path] = {}

    def factory(family: str, shards: bool = False, dtype: str = "float32") -> Path:
        key = (family, shards, dtype)
        if key in built:
            return built[key]
        folder = build_tiny_model(family, root / f"{family}-{dtype}", dtype=dtype)
        if shards:
            from transformers import AutoModelForCausalLM

            sharded = root / f"{family}-{dtype}-sharded"
            model = AutoModelForCausalLM.from_pretrained(folder)
            model.save_pretrained(sharded, max_shard_size="60KB")
            for path in folder.iterdir():
                if path.name.startswith("tokenizer"):
                    shutil.copyfile(path, sharded / path.name)
            assert len(list(sharded.glob("*.safetensors"))) > 1
            folder = sharded
        built[key] = folder
        return folder

    return factory
