"""Scale-out: torchrun ranks (gloo, CPU), a killed rank, manual shards + merge, device maps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from core.collect.partial import partial_dir
from core.collect.runner import CollectConfig, run_collection
from core.formats.bundle import load_bundle
from core.merge import merge_bundles
from tests.core.collect.conftest import TEXTS
from tests.lens_tui.cli_helpers import ROOT

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "many.txt"
    lines = [f"{TEXTS[i % len(TEXTS)]} #{i}" for i in range(160)]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _env(tag: str = "") -> dict[str, str]:
    # One thread per process everywhere, so float results are comparable bit for bit.
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "LENS_TEST_TAG": tag,
    }


def _collect_args(model: Path, data: Path, out: Path) -> list[str]:
    return [
        "collect", "-m", str(model), "-d", str(data), "-o", str(out),
        "--max-length", "24", "--batch-size", "2", "--device", "cpu", "--checkpoint-every", "0",
    ]  # fmt: skip


def _torchrun(*args: str) -> list[str]:
    return [
        str(TORCHRUN), "--nproc-per-node", "2", "--master-port", str(_free_port()),
        "-m", "lens_tui", *args,
    ]  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _single(model: Path, data: Path, out: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "lens_tui", *_collect_args(model, data, out)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


def _assert_identical(a: Path, b: Path) -> None:
    bundle_a, bundle_b = load_bundle(a), load_bundle(b)
    assert sorted(bundle_a.tensors) == sorted(bundle_b.tensors)
    for name in bundle_a.tensors:
        np.testing.assert_array_equal(bundle_a.tensors[name], bundle_b.tensors[name], name)


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is installed with torch")
def test_torchrun_two_ranks_equal_a_single_process(tiny_model, data, tmp_path):
    model = tiny_model("gpt_oss")
    out = tmp_path / "dist.safetensors"
    result = subprocess.run(
        _torchrun(*_collect_args(model, data, out)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(f"wrote {out}") == 1  # only rank 0 talks
    assert "rank 0 of 2" in result.stderr
    assert load_bundle(out).metadata["world_size"] == "2"
    assert not partial_dir(out).exists()
    _assert_identical(out, _single(model, data, tmp_path / "single.safetensors"))


def _pids_with(tag: str, rank: str) -> list[int]:
    """Processes started with LENS_TEST_TAG=tag and RANK=rank (found via /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LENS_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is installed with torch")
def test_a_killed_rank_and_a_rerun_lose_and_duplicate_nothing(tiny_model, data, tmp_path):
    model = tiny_model("gpt_oss")
    out = tmp_path / "killed.safetensors"
    tag = uuid.uuid4().hex
    command = _torchrun(*_collect_args(model, data, out))
    launcher = subprocess.Popen(
        command, env=_env(tag), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    killed = False
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and launcher.poll() is None:
            if len(list(partial_dir(out).glob("chunk-r1-*.safetensors"))) >= 3:
                for pid in _pids_with(tag, "1"):
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                break
            time.sleep(0.01)
    finally:
        launcher.wait(timeout=120)
    assert killed, "the run finished before rank 1 could be killed"
    assert launcher.returncode != 0
    assert not out.exists()
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr
    _assert_identical(out, _single(model, data, tmp_path / "single.safetensors"))


def test_manual_shards_merge_into_the_whole(tiny_model, text_file, tmp_path):
    model = str(tiny_model("mixtral"))

    def collect(out: Path, shard: str | None) -> Path:
        return run_collection(
            CollectConfig.from_settings(
                model=model, data=str(text_file), out=out, max_length=24, batch_size=2, shard=shard
            )
        )

    whole = load_bundle(collect(tmp_path / "whole.safetensors", None))
    parts = [collect(tmp_path / f"part{i}.safetensors", f"{i}/3") for i in range(3)]
    sizes = [load_bundle(p).num_samples for p in parts]
    assert sizes == [4, 3, 3]
    merged = load_bundle(merge_bundles(parts, tmp_path / "merged.safetensors").path)
    np.testing.assert_array_equal(merged.example_ids, whole.example_ids)
    for name in whole.tensors:
        np.testing.assert_allclose(
            merged.tensors[name], whole.tensors[name], rtol=1e-5, atol=1e-5, err_msg=name
        )


def test_device_map_auto_gives_the_same_statistics(tiny_model, text_file, tmp_path):
    pytest.importorskip("accelerate")
    model = str(tiny_model("qwen3_moe"))
    plain = run_collection(
        CollectConfig.from_settings(
            model=model, data=str(text_file), out=tmp_path / "a.safetensors"
        )
    )
    mapped = run_collection(
        CollectConfig.from_settings(
            model=model, data=str(text_file), out=tmp_path / "b.safetensors", device_map="auto"
        )
    )
    a, b = load_bundle(plain), load_bundle(mapped)
    for name in a.tensors:
        np.testing.assert_allclose(b.tensors[name], a.tensors[name], rtol=1e-5, atol=1e-6)


def test_bad_shard_spec_is_refused():
    from core.errors import LensError

    for spec in ("2/2", "x", "1/0", "-1/3"):
        with pytest.raises(LensError, match="--shard"):
            CollectConfig.from_settings(
                model="m", data="d.txt", out=Path("o.safetensors"), shard=spec
            )
