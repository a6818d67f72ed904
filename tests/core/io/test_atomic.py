"""The one atomic writer: complete files only, nothing left behind on failure or Ctrl-C."""

from __future__ import annotations

import os
import stat

import pytest

from core.errors import LensError
from core.io.atomic import atomic_file, atomic_write_bytes, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_bytes_and_text_replace_the_target_and_leave_no_temporary(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"\x00\x01first")
    assert path.read_bytes() == b"\x00\x01first"
    atomic_write_text(path, "zweite Fassung ✓\n")
    assert path.read_bytes() == "zweite Fassung ✓\n".encode()
    assert _leftovers(path.parent) == []


def test_file_mode_is_what_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a", b"x")
        with open(tmp_path / "b", "wb") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == (tmp_path / "b").stat().st_mode & 0o777
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failure_while_streaming_keeps_the_old_file_and_removes_the_temporary(tmp_path, exc):
    path = tmp_path / "out.safetensors"
    path.write_bytes(b"old")
    with pytest.raises(type(exc)), atomic_file(path) as handle:
        handle.write(b"half of the new")
        assert _leftovers(tmp_path) != []  # the bytes really went to a temporary file
        raise exc
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_failing_check_sees_the_complete_file_and_nothing_appears(tmp_path):
    path = tmp_path / "new.json"
    seen = []

    def check(tmp):
        seen.append((tmp.parent, tmp.read_bytes()))
        raise ValueError("invalid")

    with pytest.raises(ValueError, match="invalid"), atomic_file(path, check=check) as handle:
        handle.write(b"complete")
    assert seen == [(tmp_path, b"complete")]
    assert not path.exists() and _leftovers(tmp_path) == []


def test_a_passing_check_lets_the_file_appear(tmp_path):
    path = tmp_path / "new.json"
    with atomic_file(path, check=lambda tmp: None) as handle:
        handle.write(b"ok")
    assert path.read_bytes() == b"ok" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["fifo", "folder", "link-to-fifo"])
def test_a_special_target_is_refused_and_left_alone(tmp_path, kind):
    """os.replace would turn /dev/null (or a FIFO) into a regular file: refuse instead."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = {"fifo": fifo, "folder": tmp_path / "dir", "link-to-fifo": tmp_path / "link"}[kind]
    if kind == "folder":
        target.mkdir()
    if kind == "link-to-fifo":
        target.symlink_to(fifo)
    with pytest.raises(LensError, match="give a file name"):
        atomic_write_bytes(target, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"fifo": ["pipe"], "folder": ["dir", "pipe"], "link-to-fifo": ["link", "pipe"]}[kind]
    )
