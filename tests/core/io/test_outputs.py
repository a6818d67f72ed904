"""check_output: an --out that would destroy an input or cannot be written is refused up front."""

from __future__ import annotations

import errno
import os

import pytest

from core.errors import LensError
from core.io.outputs import check_output, output_error


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("x")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"w")
    return tmp_path, data, model


def test_an_input_is_refused_by_path_link_or_hard_link(files, monkeypatch):
    tmp, data, model = files
    with pytest.raises(LensError, match="inputs"):
        check_output(data, [data])
    monkeypatch.chdir(tmp)
    with pytest.raises(LensError, match="inputs"):
        check_output("./sub/../data.txt", ["data.txt"])
    (tmp / "sub").mkdir()
    (tmp / "link.txt").symlink_to(data)
    with pytest.raises(LensError, match="inputs"):
        check_output(tmp / "link.txt", [data])
    os.link(data, tmp / "hard.txt")
    with pytest.raises(LensError, match="inputs"):
        check_output(tmp / "hard.txt", [data])
    with pytest.raises(LensError, match="inputs"):
        check_output(model, [model], kind="folder")


def test_existing_files_inside_an_input_folder_are_protected_new_ones_are_not(files):
    tmp, _data, model = files
    with pytest.raises(LensError, match="inside the input folder"):
        check_output(model / "model.safetensors", [model])
    assert check_output(model / "new.json", [model]) == model / "new.json"
    with pytest.raises(LensError, match="holds the input"):
        check_output(tmp, [model / "model.safetensors"], kind="either")


@pytest.mark.parametrize(
    "out,needle",
    [
        ("/proc/x.json", "/proc"),
        ("/proc/self/fd/x", "/proc"),
        ("/sys/kernel/x", "/sys"),
        ("/dev/x.json", "/dev"),
        ("", "not a usable path"),
        (" x.json", "not a usable path"),
    ],
)
def test_special_and_empty_paths_are_refused(out, needle):
    with pytest.raises(LensError, match=needle):
        check_output(out)


def test_below_a_file_folders_for_files_and_long_names(files):
    tmp, data, model = files
    with pytest.raises(LensError, match="is a file, not a folder"):
        check_output(data / "x.json")
    with pytest.raises(LensError, match="is a file, not a folder"):
        check_output(data / "a" / "b" / "x.json")
    with pytest.raises(LensError, match="is a folder"):
        check_output(model)
    with pytest.raises(LensError, match="is a file; --out names a folder"):
        check_output(data, kind="folder")
    with pytest.raises(LensError, match="255 bytes"):
        check_output(tmp / ("é" * 128 + ".json"))  # 256 bytes in UTF-8, 129 characters
    assert check_output(tmp / ("é" * 120 + ".json"))
    assert check_output(tmp / "new" / "deeper" / "x.json")  # missing folders get created


def test_unwritable_folder_is_refused(tmp_path, monkeypatch):
    """As root every folder is writable, so the kernel's answer is simulated here."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        "core.io.outputs.os.access", lambda p, mode: False if p == folder else real_access(p, mode)
    )
    with pytest.raises(LensError, match=f"the folder {folder} is not writable"):
        check_output(folder / "new" / "x.json")
    assert check_output(tmp_path / "x.json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(LensError, match="not writable"):
            check_output(folder / "x.json")
    finally:
        folder.chmod(0o755)


def test_dangling_link_in_the_way_is_refused(tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(LensError, match="broken link"):
        check_output(tmp_path / "gone" / "x.json")


def test_output_error_is_one_line_naming_the_failing_file(tmp_path):
    error = output_error(tmp_path / "o.json", OSError(errno.ENOSPC, "No space", "/x/.o.tmp"))
    assert (
        str(error)
        == f"{tmp_path / 'o.json'}: cannot write it: no space left on the device (/x/.o.tmp)"
    )
    error = output_error("o.json", PermissionError(errno.EACCES, "Permission denied"))
    assert str(error) == "o.json: cannot write it: Permission denied"
    assert "\n" not in str(output_error("o", OSError("a\nb")))
