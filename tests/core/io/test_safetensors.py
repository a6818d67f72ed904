"""The safetensors codec against the reference library: header bytes, mmap reads, streamed writes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save, save_file

from core.errors import BundleError, LensError
from core.io.safetensors import (
    OutTensor,
    copy_piece,
    dtype_name,
    encode_header,
    fill_piece,
    map_safetensors,
    read_header,
    read_safetensors,
    rows_pieces,
    write_safetensors,
)


def _arrays():
    rng = np.random.default_rng(3)
    return {
        "w": rng.normal(size=(5, 3)).astype(np.float32),
        "ids": np.arange(7, dtype=np.int64),
        "flags": rng.integers(0, 2, size=(2, 2)).astype(np.uint8),
        "half": rng.normal(size=(4,)).astype(np.float16),
    }


def test_header_writer_matches_the_reference_library_byte_for_byte():
    # One metadata key: the library keeps __metadata__ in a hash map, so with
    # several keys its order (and so its bytes) varies from run to run.
    arrays = _arrays()
    raw = save(arrays, metadata={"model": "m"})
    (length,) = struct.unpack("<Q", raw[:8])
    order = [k for k in json.loads(raw[8 : 8 + length]) if k != "__metadata__"]
    mine = encode_header(
        [(k, dtype_name(arrays[k].dtype), arrays[k].shape, arrays[k].nbytes) for k in order],
        {"model": "m"},
    )
    assert mine == raw[: 8 + length]
    assert len(mine) % 8 == 0


def test_header_reader_gives_absolute_byte_ranges(tmp_path):
    arrays = _arrays()
    path = tmp_path / "t.safetensors"
    save_file(arrays, str(path), metadata={"k": "v"})
    header = read_header(path)
    assert header.metadata == {"k": "v"}
    data = path.read_bytes()
    for name, array in arrays.items():
        entry = header.tensors[name]
        assert entry.shape == array.shape and entry.file == path
        assert data[entry.start : entry.end] == array.tobytes()


def test_mmap_reader_maps_without_copying(tmp_path):
    arrays = _arrays()
    path = tmp_path / "t.safetensors"
    save_file(arrays, str(path))
    _, mapped = map_safetensors(path)
    for name, array in arrays.items():
        assert isinstance(mapped[name], np.memmap)
        np.testing.assert_array_equal(mapped[name], array)


def test_bfloat16_is_refused_by_bundles_and_read_as_raw_bits_otherwise(tmp_path):
    bits = np.array([0x3F80, 0xC000], dtype=np.uint16)  # 1.0, -2.0 in bfloat16
    body = bits.tobytes()
    head = encode_header([("x", "BF16", (2,), len(body))], {})
    path = tmp_path / "bf.safetensors"
    path.write_bytes(head + body)
    with pytest.raises(BundleError, match="unsupported dtype BF16"):
        map_safetensors(path)
    _, tensors = read_safetensors(path)
    np.testing.assert_array_equal(tensors["x"], bits)


def test_streamed_writer_assembles_pieces_the_library_reads_back(tmp_path):
    source = tmp_path / "src.safetensors"
    w = np.arange(24, dtype=np.float32).reshape(6, 4)
    save_file({"w": w}, str(source))
    entry = read_header(source).tensors["w"]
    rows = [0, 1, 2, 4]  # two runs: 0..2 and 4
    pieces = rows_pieces(entry, rows)
    assert len(pieces) == 2
    fill = np.float32(-1.5).tobytes()
    out = tmp_path / "out.safetensors"
    seen = []
    size = write_safetensors(
        out,
        [
            OutTensor("sliced", "F32", (4, 4), tuple(pieces)),
            OutTensor("whole", "F32", (6, 4), (copy_piece(entry),)),
            OutTensor("filled", "F32", (3,), (fill_piece(fill, 3),)),
        ],
        {"source": "src"},
        on_bytes=seen.append,
    )
    assert size == out.stat().st_size and sum(seen) == (16 + 24 + 3) * 4
    back = load_file(str(out))
    np.testing.assert_array_equal(back["sliced"], w[rows])
    np.testing.assert_array_equal(back["whole"], w)
    np.testing.assert_array_equal(back["filled"], np.full(3, -1.5, dtype=np.float32))
    assert read_header(out).metadata == {"source": "src"}


def test_streamed_writer_leaves_nothing_when_a_source_is_truncated(tmp_path):
    source = tmp_path / "src.safetensors"
    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(source))
    entry = read_header(source).tensors["w"]
    source.write_bytes(source.read_bytes()[: entry.start + 8])
    out = tmp_path / "out.safetensors"
    with pytest.raises(LensError, match="ended early"):
        write_safetensors(out, [OutTensor("w", "F32", (4, 4), (copy_piece(entry),))], {})
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _with_header(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty file"),
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 10**6) + b"{}", "bad header length"),
        (_with_header(b"not json"), "header is not JSON"),
        (_with_header(b"[1, 2]"), "header is not an object"),
        (
            _with_header(b'{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'),
            "runs past the end",
        ),
        (_with_header(b'{"x":{"dtype":"F32"}}'), "malformed header entry"),
        (
            _with_header(b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}'),
            "malformed byte range",
        ),
        (_with_header(b'{"__metadata__":[1]}'), "__metadata__ is not a string map"),
    ],
)
def test_malformed_headers_are_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(BundleError) as err:
        read_header(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)
