"""A bundle with hash-routed layers (DeepSeek-V4) says so when the app loads it."""

from __future__ import annotations

import json

import numpy as np

from core.formats.bundle import bundle_metadata, load_bundle, write_bundle
from lens_tui.app import build_app
from tests.conftest import make_bundle
from tests.lens_tui.helpers import async_test, record_notifications


def hashed_bundle(path, layers):
    tokens = np.array([5, 7, 9], dtype=np.int64)
    prob = np.full((3, 2, 4), 0.25, dtype=np.float32) * tokens[:, None, None]
    meta = bundle_metadata(
        model="tiny-v4",
        dataset=path.stem,
        num_layers=2,
        num_experts=4,
        top_k=2,
        hash_routed_layers=json.dumps(layers),
    )
    tensors = {"prob_sum": prob, "token_count": tokens, "example_ids": np.arange(3)}
    return write_bundle(path, tensors, meta)


def test_the_bundle_lists_its_hash_routed_layers(tmp_path):
    assert load_bundle(hashed_bundle(tmp_path / "v4.safetensors", [0])).hash_routed_layers == [0]
    assert load_bundle(make_bundle(tmp_path / "plain.safetensors")).hash_routed_layers == []


@async_test
async def test_loading_a_hash_routed_bundle_notifies_once(tmp_path):
    hashed_bundle(tmp_path / "v4.safetensors", [0, 1])
    make_bundle(tmp_path / "plain.safetensors")
    app = build_app([tmp_path])
    notes = record_notifications(app)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
    hashed = [message for _, message in notes if "hash-routed" in message]
    assert hashed == [
        "v4: MoE layers 0, 1 are hash-routed: their experts come from a token-id table, so "
        "their top-k counts say what the table chose, not the router (prob_sum is still the "
        "router's softmax)"
    ]
