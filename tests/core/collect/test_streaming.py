"""``--stream-layers``: the same bundle as a whole-model run, resumable at layer boundaries."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.collect.partial import partial_dir
from core.collect.runner import CollectConfig, CollectionCancelled, run_collection
from core.errors import LensError
from core.formats.bundle import OPTIONAL_TENSORS, load_bundle
from tests.core.collect.conftest import TEXTS
from tests.lens_tui.cli_helpers import ROOT
from tests.tiny_models import EXTRA_FAMILIES, FAMILIES

FLOAT_STATS = ("prob_sum", *(n for n in OPTIONAL_TENSORS if n != "topk_count"))


def _config(model, data, out, **overrides) -> CollectConfig:
    settings = dict(
        model=str(model),
        data=str(data),
        out=out,
        max_length=24,
        batch_size=3,
        device="cpu",
        dtype="float32",
    )
    settings.update(overrides)
    return CollectConfig.from_settings(**settings)


def assert_same_bundle(whole, streamed) -> None:
    """``topk_count`` and the sample axes exactly; every float statistic within 1e-6 relative."""
    a, b = load_bundle(whole), load_bundle(streamed)
    assert set(a.tensors) == set(b.tensors)
    exact = ("token_count", "example_ids", "topk_count", "reap_literal_count")
    for name in (n for n in exact if n in a.tensors):
        np.testing.assert_array_equal(a.tensors[name], b.tensors[name], name)
    # Llama-4 records no REAP-literal statistics (its weights scale the expert input).
    for name in (n for n in FLOAT_STATS if n in a.tensors):
        np.testing.assert_allclose(
            a.tensors[name], b.tensors[name], rtol=1e-6, atol=0, err_msg=name
        )
    assert b.metadata["stream_layers"] == "true"
    assert a.metadata["family"] == b.metadata["family"]


#: Every family with a tiny model: hybrids too (a layer called alone without a cache runs
#: its linear attention or Mamba mixer over the whole sequence, as in a whole-model forward).
STREAMED = (*FAMILIES, *EXTRA_FAMILIES, "qwen3_next")


@pytest.mark.parametrize("family", STREAMED)
def test_streamed_bundle_equals_whole_model_run(family, tiny_model, text_file, tmp_path):
    model = tiny_model(family)
    whole = run_collection(_config(model, text_file, tmp_path / "whole.safetensors"))
    updates = []
    streamed = run_collection(
        _config(model, text_file, tmp_path / "streamed.safetensors", stream_layers=True),
        progress=updates.append,
    )
    assert_same_bundle(whole, streamed)
    assert not partial_dir(streamed).exists()  # hidden states are gone with the partial folder
    messages = [u.message for u in updates if u.stage == "collecting"]
    assert "layer 1 of 2" in messages and "layer 2 of 2" in messages
    within = [u.samples_done for u in updates if u.message == "layer 2 of 2"]
    assert within == [3, 6, 9, 10]  # samples within the layer, batch by batch


def test_streamed_shard_equals_whole_model_shard(tiny_model, text_file, tmp_path):
    model = tiny_model("qwen3_moe")
    whole = run_collection(_config(model, text_file, tmp_path / "w.safetensors", shard="1/2"))
    streamed = run_collection(
        _config(model, text_file, tmp_path / "s.safetensors", shard="1/2", stream_layers=True)
    )
    assert load_bundle(streamed).tensors["example_ids"].tolist() == [1, 3, 5, 7, 9]
    assert_same_bundle(whole, streamed)


def test_cancel_inside_a_layer_then_resume(tiny_model, text_file, tmp_path):
    model = tiny_model("mixtral")
    whole = run_collection(_config(model, text_file, tmp_path / "whole.safetensors"))
    out = tmp_path / "resumed.safetensors"
    polls = []

    def stop_in_second_layer() -> bool:  # 4 batches per layer: poll 6 is layer 2, batch 2
        polls.append(1)
        return len(polls) == 6

    with pytest.raises(CollectionCancelled, match="layer 2 of 2"):
        run_collection(
            _config(model, out=out, data=text_file, stream_layers=True), None, stop_in_second_layer
        )
    assert not out.exists()
    assert (partial_dir(out) / "layer-r0-0000.safetensors").exists()
    updates = []
    run_collection(_config(model, text_file, out, stream_layers=True), progress=updates.append)
    assert any("resuming at layer 2 of 2" in u.message for u in updates)
    assert not any(u.message == "layer 1 of 2" for u in updates)  # layer 1 was not redone
    assert_same_bundle(whole, out)


def test_a_family_that_cannot_stream_is_refused_in_one_line(
    tiny_model, text_file, tmp_path, monkeypatch
):
    from dataclasses import replace

    from core.families import BY_BLOCK_CLASS

    block = "MixtralSparseMoeBlock"
    refused = replace(BY_BLOCK_CLASS[block], stream_refusal="its layers need each other's state")
    monkeypatch.setitem(BY_BLOCK_CLASS, block, refused)
    out = tmp_path / "s.safetensors"
    with pytest.raises(LensError, match="Mixtral: cannot be streamed layer by layer \\(its layers"):
        run_collection(_config(tiny_model("mixtral"), text_file, out, stream_layers=True))
    assert not partial_dir(out).exists()


def test_not_enough_disk_is_refused_in_one_line(tiny_model, text_file, tmp_path, monkeypatch):
    import shutil

    import core.collect.hidden as hidden

    real = shutil.disk_usage
    monkeypatch.setattr(hidden.shutil, "disk_usage", lambda path: real(path)._replace(free=1000))
    out = tmp_path / "s.safetensors"
    with pytest.raises(LensError, match=r"needs .* of disk for hidden states") as caught:
        run_collection(_config(tiny_model("olmoe"), text_file, out, stream_layers=True))
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def many_lines(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "many.txt"
    lines = [f"{TEXTS[i % len(TEXTS)]} ({i})" for i in range(40)]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("variable", "point"),
    [("LENS_TEST_PAUSE_AFTER_LAYER", "0:120"), ("LENS_TEST_PAUSE_IN_LAYER", "1:3:120")],
    ids=["between-layers", "inside-a-layer"],
)
def test_sigkill_then_rerun_resumes_and_equals_whole_model(
    variable, point, tiny_model, many_lines, tmp_path
):
    model = tiny_model("gpt_oss")
    out = tmp_path / "killed.safetensors"
    command = [
        sys.executable, "-m", "lens_tui", "collect", "-m", str(model), "-d", str(many_lines),
        "-o", str(out), "--max-length", "24", "--batch-size", "3", "--device", "cpu",
        "--dtype", "float32", "--stream-layers",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env={**env, variable: point}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        for line in process.stderr:
            if "lens-test: paused" in line or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    assert (partial_dir(out) / "layer-r0-0000.safetensors").exists()
    assert not (partial_dir(out) / "layer-r0-0001.safetensors").exists()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming at layer 2 of 2" in rerun.stderr
    whole = run_collection(_config(model, many_lines, tmp_path / "whole.safetensors"))
    assert_same_bundle(whole, out)


def test_left_padding_streams_the_same(tiny_model, text_file, tmp_path):
    """Left padding puts pads before real tokens: the layer's attention mask must be the model's."""
    model = tiny_model("gpt_oss")
    left = dict(padding_side="left")
    whole = run_collection(_config(model, text_file, tmp_path / "w.safetensors", **left))
    streamed = run_collection(
        _config(model, text_file, tmp_path / "s.safetensors", stream_layers=True, **left)
    )
    assert load_bundle(streamed).metadata["padding_side"] == "left"
    assert_same_bundle(whole, streamed)


@pytest.mark.skipif(
    not Path(sys.executable).with_name("torchrun").exists(), reason="torchrun comes with torch"
)
def test_torchrun_ranks_each_stream_their_share(tiny_model, many_lines, tmp_path):
    model = tiny_model("qwen2_moe")
    out = tmp_path / "dist.safetensors"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        torchrun, "--nproc-per-node", "2", "--master-port", str(port), "-m", "lens_tui",
        "collect", "-m", str(model), "-d", str(many_lines), "-o", str(out), "--max-length", "24",
        "--batch-size", "3", "--device", "cpu", "--dtype", "float32", "--stream-layers",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert load_bundle(out).metadata["world_size"] == "2"
    assert not partial_dir(out).exists()
    whole = run_collection(_config(model, many_lines, tmp_path / "whole.safetensors"))
    assert_same_bundle(whole, out)


def test_killed_after_its_chunk_before_finishing_reruns_cleanly(
    tiny_model, text_file, tmp_path, monkeypatch
):
    import core.collect.streaming as streaming

    model = tiny_model("olmoe")
    out = tmp_path / "s.safetensors"
    real = streaming._State.write

    def crash_when_finished(self, **state):
        if state.get("finished"):
            raise RuntimeError("killed")
        real(self, **state)

    monkeypatch.setattr(streaming._State, "write", crash_when_finished)
    with pytest.raises(RuntimeError, match="killed"):
        run_collection(_config(model, text_file, out, stream_layers=True))
    assert len(list(partial_dir(out).glob("chunk-r0-*.safetensors"))) == 1
    monkeypatch.setattr(streaming._State, "write", real)
    run_collection(_config(model, text_file, out, stream_layers=True))
    whole = run_collection(_config(model, text_file, tmp_path / "whole.safetensors"))
    assert_same_bundle(whole, out)


def test_the_mapping_threshold_follows_the_largest_batchs_hidden_states(
    tiny_model, text_file, tmp_path, monkeypatch
):
    """Blocks wider than one batch's hidden states get their own mappings on CPU (see
    ``core.model.native_memory.mapping_threshold``): the run passes the largest batch's size."""
    from transformers import AutoConfig, AutoTokenizer

    from core.model import layerwise

    asked: list[int] = []
    original = layerwise.mapping_threshold
    monkeypatch.setattr(
        layerwise, "mapping_threshold", lambda size: asked.append(size) or original(size)
    )
    model = tiny_model("qwen3_moe")
    run_collection(_config(model, text_file, tmp_path / "s.safetensors", stream_layers=True))
    tokenizer = AutoTokenizer.from_pretrained(model)
    lengths = sorted((min(24, len(tokenizer(text)["input_ids"])) for text in TEXTS), reverse=True)
    hidden = AutoConfig.from_pretrained(model).hidden_size
    # batch size 3, longest first: the first batch is the largest, 3 × its longest × hidden × 4 bytes
    assert asked == [3 * lengths[0] * hidden * 4]
