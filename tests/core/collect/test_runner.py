"""The collection pipeline as a whole: resume, cancel, refusal of mixed runs, provenance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import core.model.loading as loading
from core.collect.partial import partial_dir
from core.collect.runner import CollectConfig, CollectionCancelled, run_collection
from core.errors import LensError
from core.formats.bundle import OPTIONAL_TENSORS, load_bundle
from tests.core.collect.conftest import TEXTS
from tests.lens_tui.cli_helpers import ROOT

TENSORS = ("prob_sum", "token_count", "example_ids", *OPTIONAL_TENSORS)


def _config(model, data, out, **overrides) -> CollectConfig:
    settings = dict(
        model=str(model), data=str(data), out=out, max_length=24, batch_size=2, device="cpu"
    )
    settings.update(overrides)
    return CollectConfig.from_settings(**settings)


def _assert_same_tensors(a, b, exact: bool = True) -> None:
    bundle_a, bundle_b = load_bundle(a), load_bundle(b)
    assert set(bundle_a.tensors) == set(bundle_b.tensors)
    for name in bundle_a.tensors:
        if exact:
            np.testing.assert_array_equal(bundle_a.tensors[name], bundle_b.tensors[name], name)
        else:
            np.testing.assert_allclose(
                bundle_a.tensors[name], bundle_b.tensors[name], rtol=1e-5, atol=1e-5
            )


@pytest.fixture(scope="module")
def many_lines(tmp_path_factory):
    """Enough samples that a run takes a few seconds with batch size 2."""
    path = tmp_path_factory.mktemp("data") / "many.txt"
    lines = [f"{TEXTS[i % len(TEXTS)]} ({i})" for i in range(120)]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_cancel_then_resume_equals_uninterrupted(tiny_model, text_file, tmp_path):
    model = tiny_model("gpt_oss")
    whole = run_collection(_config(model, text_file, tmp_path / "whole.safetensors"))
    out = tmp_path / "resumed.safetensors"
    polls = []

    def stop_after_two_batches() -> bool:
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(CollectionCancelled, match="re-running resumes"):
        run_collection(
            _config(model, text_file, out, checkpoint_seconds=1e9),
            should_stop=stop_after_two_batches,
        )
    assert not out.exists()
    assert list(partial_dir(out).glob("chunk-*.safetensors"))
    updates = []
    run_collection(_config(model, text_file, out), progress=updates.append)
    assert not partial_dir(out).exists()
    assert any("resuming: 4 of 10" in u.message for u in updates)
    collecting = [u for u in updates if u.stage == "collecting"]
    assert collecting[-1].samples_done == 10  # 4 saved before + 6 collected now
    _assert_same_tensors(whole, out)


def test_sigkill_mid_run_then_rerun_gives_the_same_bundle(tiny_model, many_lines, tmp_path):
    model = tiny_model("gpt_oss")
    out = tmp_path / "killed.safetensors"
    command = [
        sys.executable,
        "-m",
        "lens_tui",
        "collect",
        "-m",
        str(model),
        "-d",
        str(many_lines),
        "-o",
        str(out),
        "--max-length",
        "24",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--checkpoint-every",
        "0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if len(list(partial_dir(out).glob("chunk-*.safetensors"))) >= 3:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not out.exists()
    saved = len(list(partial_dir(out).glob("chunk-*.safetensors")))
    assert 3 <= saved < 60
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    whole = run_collection(_config(model, many_lines, tmp_path / "whole.safetensors"))
    _assert_same_tensors(whole, out)


def test_resume_with_a_smaller_batch_size(tiny_model, text_file, tmp_path):
    model = tiny_model("mixtral")
    whole = run_collection(_config(model, text_file, tmp_path / "whole.safetensors"))
    out = tmp_path / "oom.safetensors"
    with pytest.raises(CollectionCancelled):
        run_collection(
            _config(model, text_file, out, batch_size=4, checkpoint_seconds=0),
            should_stop=iter([False, True]).__next__,
        )
    run_collection(_config(model, text_file, out, batch_size=1))
    _assert_same_tensors(whole, out, exact=False)


def test_resume_with_other_settings_is_refused(tiny_model, text_file, tmp_path):
    model = tiny_model("gpt_oss")
    out = tmp_path / "b.safetensors"
    with pytest.raises(CollectionCancelled):
        run_collection(_config(model, text_file, out), should_stop=lambda: True)
    with pytest.raises(LensError, match="different settings.*max_length"):
        run_collection(_config(model, text_file, out, max_length=8))
    assert not out.exists()


def test_rerun_of_a_finished_run_does_nothing(tiny_model, text_file, tmp_path, monkeypatch):
    model = tiny_model("gpt_oss")
    out = run_collection(_config(model, text_file, tmp_path / "b.safetensors"))
    before = out.read_bytes()

    def no_model(*args, **kwargs):
        raise AssertionError("a finished run must not load the model again")

    monkeypatch.setattr("core.model.loading.load_model_and_tokenizer", no_model)
    updates = []
    assert run_collection(_config(model, text_file, out), progress=updates.append) == out
    assert updates[-1].stage == "done" and "already complete" in updates[-1].message
    assert out.read_bytes() == before


def test_existing_bundle_of_another_run_needs_overwrite(tiny_model, text_file, tmp_path):
    model = tiny_model("gpt_oss")
    out = run_collection(_config(model, text_file, tmp_path / "b.safetensors", max_length=8))
    with pytest.raises(LensError, match="--overwrite"):
        run_collection(_config(model, text_file, out))
    run_collection(_config(model, text_file, out, overwrite=True))
    assert load_bundle(out).metadata["max_length"] == "24"


def test_progress_and_provenance(tiny_model, text_file, tmp_path):
    model = tiny_model("qwen3_moe")
    updates = []
    out = run_collection(
        _config(model, text_file, tmp_path / "b.safetensors", dataset_name="calib-en"),
        progress=updates.append,
    )
    stages = [u.stage for u in updates]
    assert stages[0] == "loading" and stages[-1] == "done"
    assert stages.index("tokenizing") < stages.index("collecting") < stages.index("writing")
    last = updates[-1]
    bundle = load_bundle(out)
    assert last.samples_done == last.samples_total == bundle.num_samples == len(TEXTS)
    assert last.tokens_done == int(bundle.token_count.sum())
    assert last.tokens_per_s > 0 and last.samples_per_s > 0
    meta = bundle.metadata
    assert meta["dataset"] == "calib-en" and meta["model"] == str(model)
    assert meta["family"] == "qwen3_moe" and meta["model_type"] == "qwen3_moe"
    assert json.loads(meta["layer_names"]) == ["model.layers.0.mlp", "model.layers.1.mlp"]
    assert meta["tool"] == "expert-calibration-lens" and meta["torch_version"]
    assert json.loads(meta["collect_args"])["batch_size"] == 2
    assert meta["norm_method"] == "recording"


def test_skips_empty_records_but_keeps_their_positions(tiny_model, tmp_path):
    data = tmp_path / "d.jsonl"
    records = [{"text": "first sample"}, {"text": "   "}, {"text": "third sample here"}]
    data.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    out = run_collection(_config(tiny_model("gpt_oss"), data, tmp_path / "b.safetensors"))
    assert load_bundle(out).example_ids.tolist() == [0, 2]


def test_runs_sharing_a_model_cache_load_the_model_once(
    tiny_model, text_file, tmp_path, monkeypatch
):
    loads = []
    original = loading.load_model_and_tokenizer

    def counting(options):
        loads.append(options.model)
        return original(options)

    monkeypatch.setattr(loading, "load_model_and_tokenizer", counting)
    cache = loading.ModelCache()
    model = tiny_model("gpt_oss")
    other = tmp_path / "other.txt"
    other.write_text("a different calibration set\nwith two lines\n", encoding="utf-8")
    left = run_collection(
        _config(model, text_file, tmp_path / "a.safetensors", padding_side="left"), models=cache
    )
    right = run_collection(_config(model, other, tmp_path / "b.safetensors"), models=cache)
    assert loads == [str(model)]
    assert load_bundle(left).metadata["padding_side"] == "left"
    assert load_bundle(right).metadata["padding_side"] == "right"
    assert load_bundle(right).num_samples == 2
