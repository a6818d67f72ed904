"""Collect deletes only what it can prove it created, and cleans up after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from core.collect.partial import RUN_FILE, partial_dir
from core.collect.runner import CollectConfig, run_collection
from core.errors import LensError
from tests.lens_tui.cli_helpers import ROOT


def _config(model, data, out) -> CollectConfig:
    return CollectConfig.from_settings(
        model=str(model), data=str(data), out=out, max_length=24, batch_size=2, device="cpu"
    )


def test_a_foreign_partial_folder_is_refused_and_left_alone(tiny_model, text_file, tmp_path):
    out = tmp_path / "x.safetensors"
    foreign = partial_dir(out)
    foreign.mkdir()
    (foreign / "notes.txt").write_text("the user's own file")
    with pytest.raises(LensError, match=f"holds no {RUN_FILE}"):
        run_collection(_config(tiny_model("gpt_oss"), text_file, out))
    assert (foreign / "notes.txt").read_text() == "the user's own file"
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert not out.exists()


def test_sigkill_during_the_final_write_then_rerun_leaves_nothing_behind(
    tiny_model, text_file, tmp_path
):
    model = tiny_model("gpt_oss")
    out = tmp_path / "killed.safetensors"
    unrelated = tmp_path / ".other.safetensors.abc.tmp"  # not ours: another name
    unrelated.write_bytes(b"keep me")
    command = [
        sys.executable, "-m", "lens_tui", "collect", "-m", str(model), "-d", str(text_file),
        "-o", str(out), "--max-length", "24", "--batch-size", "2", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command,
        env={**env, "LENS_TEST_PAUSE_IN_FINAL_WRITE": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:  # the run announces that it is inside the final write
            if "lens-test: final write started" in line:
                break
        leftovers = list(tmp_path.glob(".killed.safetensors.*.tmp"))
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert len(leftovers) == 1 and leftovers[0].exists(), "expected a half-written temporary"
    assert not out.exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert out.exists()
    assert not list(tmp_path.glob(".killed.safetensors.*")), "a temporary file was left"
    assert not partial_dir(out).exists()
    assert unrelated.read_bytes() == b"keep me"
