"""Prune cleans up the staging folder of a killed run, and only that; outputs get normal modes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

from core.formats.mask import Mask, write_mask
from core.prune.surgery import STAGING_MARKER, prune_checkpoint
from tests.lens_tui.cli_helpers import ROOT


def _mask(folder, layers) -> Mask:
    return Mask(model=str(folder), num_experts=8, criterion="test", sources=[], layers=layers)


def test_pruned_folder_gets_the_umask_mode_not_mkdtemp_0700(tiny_model, tmp_path):
    source = tiny_model("mixtral")
    old = os.umask(0o022)
    try:
        prune_checkpoint(source, _mask(source, [[0, 1], [2, 3]]), tmp_path / "p")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p").stat().st_mode) == 0o755
    assert not (tmp_path / "p" / STAGING_MARKER).exists()


def test_sigkill_mid_write_then_rerun_leaves_no_staging_folder(tiny_model, tmp_path):
    source = tiny_model("mixtral", shards=True)
    mask = tmp_path / "m.json"
    write_mask(mask, _mask(source, [[0, 1], [2, 3]]))
    out = tmp_path / "pruned"
    users = tmp_path / ".pruned.mine.partial"  # the user's, by name only: no marker
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    command = [sys.executable, "-m", "lens_tui", "prune", "--model", str(source),
               "--mask", str(mask), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command,
        env={**env, "LENS_TEST_PAUSE_AFTER_SHARD": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:  # one shard is on disk, the rest is not
            if "lens-test: shard written" in line:
                break
        staging = [p for p in tmp_path.glob(".pruned.*.partial") if p != users]
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert len(staging) == 1 and list(staging[0].glob("model-*.safetensors"))
    assert not out.exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "config.json").exists()
    assert [p.name for p in tmp_path.glob(".pruned.*")] == [users.name]
    assert (users / "keep.txt").read_text() == "mine"
