"""Shared fixtures: small synthetic bundles written through the real writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.formats.bundle import bundle_metadata, write_bundle


def routing_sums(
    rng: np.random.Generator,
    token_count: np.ndarray,
    layers: int,
    experts: int,
    concentration: float = 0.5,
) -> np.ndarray:
    """Per-sample routing sums a real collection could give: each row sums to its tokens."""
    per_token = rng.dirichlet(np.full(experts, concentration), size=(len(token_count), layers))
    return (per_token * np.asarray(token_count)[:, None, None]).astype(np.float32)


def routed_counts(
    rng: np.random.Generator,
    token_count: np.ndarray,
    layers: int,
    experts: int,
    top_k: int,
    never: tuple[int, list[int]] | None = None,
) -> np.ndarray:
    """``topk_count`` a real collection could give: each token picks ``top_k`` distinct experts.

    ``never`` = (layer, experts) are never picked in that layer.
    """
    counts = np.zeros((len(token_count), layers, experts), dtype=np.int32)
    for n, tokens in enumerate(np.asarray(token_count)):
        for layer in range(layers):
            allowed = np.arange(experts)
            if never is not None and never[0] == layer:
                allowed = np.setdiff1d(allowed, never[1])
            for _ in range(int(tokens)):
                counts[n, layer, rng.choice(allowed, top_k, replace=False)] += 1
    return counts


def make_bundle(
    path: Path,
    *,
    n: int = 12,
    layers: int = 3,
    experts: int = 8,
    top_k: int = 2,
    seed: int = 0,
    energy: bool = True,
    concentration: float = 0.5,
    dataset: str | None = None,
    model: str = "tiny-moe",
    token_count: np.ndarray | None = None,
    prob_sum: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a valid bundle with Dirichlet routing sums; returns its path."""
    rng = np.random.default_rng(seed)
    extra = dict(extra or {})
    if token_count is None and "token_count" in extra:  # statistics made for these counts
        token_count = extra.pop("token_count")
    if token_count is None:
        token_count = rng.integers(1, 40, size=n)
    token_count = np.asarray(token_count, dtype=np.int64)
    if prob_sum is None:
        per_token = rng.dirichlet(np.full(experts, concentration), size=(n, layers))
        prob_sum = per_token * token_count[:, None, None]
    tensors = {
        "prob_sum": np.asarray(prob_sum, dtype=np.float32),
        "token_count": token_count,
        "example_ids": np.arange(len(token_count), dtype=np.int64),
    }
    if energy:
        tensors["energy_sum"] = (
            rng.random((len(token_count), layers, experts)) * token_count[:, None, None]
        ).astype(np.float32)
    tensors.update(extra)
    meta = bundle_metadata(
        model=model,
        dataset=dataset or path.stem,
        num_layers=layers,
        num_experts=experts,
        top_k=top_k,
    )
    return write_bundle(path, tensors, meta)


@pytest.fixture
def bundle_factory(tmp_path: Path):
    def factory(name: str = "a", **kwargs) -> Path:
        return make_bundle(tmp_path / f"{name}.safetensors", **kwargs)

    return factory
