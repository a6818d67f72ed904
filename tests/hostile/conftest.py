"""A workspace of valid and hostile inputs, and the contract every bad input must meet."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.formats.mask import Mask, write_mask
from tests.conftest import make_bundle

ROOT = Path(__file__).resolve().parents[2]
L, E = 3, 8


@pytest.fixture
def workspace(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of :func:`template` per case, so one case's damage cannot hide another's."""
    ws = tmp_path / "ws"
    shutil.copytree(template, ws)
    return ws


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    """Bundles (good, of another model, of another shape, broken), a mask, data, a model folder."""
    ws = tmp_path_factory.mktemp("hostile")
    make_bundle(ws / "a.safetensors", layers=L, experts=E, seed=1, dataset="a")
    make_bundle(ws / "b.safetensors", layers=L, experts=E, seed=2, dataset="b")
    make_bundle(ws / "other.safetensors", layers=L, experts=E, seed=3, model="other-moe")
    make_bundle(ws / "wide.safetensors", layers=L, experts=16, seed=4)
    folder = ws / "bundles"
    folder.mkdir()
    for name in ("a", "b"):
        shutil.copyfile(ws / f"{name}.safetensors", folder / f"{name}.safetensors")
    mixed = ws / "mixed"
    mixed.mkdir()
    shutil.copyfile(ws / "a.safetensors", mixed / "a.safetensors")
    shutil.copyfile(ws / "other.safetensors", mixed / "other.safetensors")
    good = (ws / "a.safetensors").read_bytes()
    (ws / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (ws / "empty.safetensors").write_bytes(b"")
    (ws / "text.safetensors").write_text("not a bundle at all\n")
    (ws / "nobundles").mkdir()
    write_mask(
        ws / "mask.json",
        Mask(model="tiny-moe", num_experts=E, criterion="mass", sources=[], layers=[[0, 1]] * L),
    )
    (ws / "garbage.json").write_text("{not json")
    (ws / "data.txt").write_text("one sample\nanother sample\n")
    (ws / "file").write_text("a file, not a folder\n")
    model = ws / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "mixtral", "num_local_experts": 8}')
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (ws / "raw").mkdir()
    shutil.copyfile(ROOT / "sample_stats" / "eval_wiki_en.json", ws / "eval.json")
    return ws


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its bytes (folders: "dir")."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def invoke(args: list[str]) -> Result:
    from lens_tui.cli import cli

    return CliRunner().invoke(cli, args, env={"HF_HUB_OFFLINE": "1", "COLUMNS": "120"})


def assert_clean_refusal(result: Result, *needles: str) -> None:
    """Non-zero exit, no traceback, exactly one line on stderr holding every needle, no stdout."""
    assert result.exit_code not in (0, None), result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}") from result.exception
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
