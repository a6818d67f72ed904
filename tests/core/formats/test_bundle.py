"""Bundle I/O: round trip, memory mapping, validation, atomic writes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from core.errors import BundleError
from core.formats.bundle import FORMAT, bundle_metadata, find_bundles, load_bundle, write_bundle
from tests.conftest import make_bundle


def _meta(**over):
    meta = bundle_metadata(model="m", dataset="d", num_layers=2, num_experts=4, top_k=2)
    meta.update(over)
    return meta


def _tensors(n=3, layers=2, experts=4):
    return {
        "prob_sum": np.ones((n, layers, experts), dtype=np.float32),
        "token_count": np.full(n, 4, dtype=np.int64),
        "example_ids": np.arange(n, dtype=np.int64),
    }


def _raw_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a safetensors file by hand (so tests can produce files the writer refuses)."""
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata=metadata)


def test_round_trip_and_mmap(tmp_path):
    path = make_bundle(tmp_path / "a.safetensors", n=5, layers=2, experts=4)
    bundle = load_bundle(path)
    assert isinstance(bundle.prob_sum, np.memmap)
    assert bundle.metadata["format"] == FORMAT
    assert (bundle.num_samples, bundle.num_layers, bundle.num_experts, bundle.top_k) == (5, 2, 4, 2)
    assert bundle.num_tokens == int(np.asarray(bundle.token_count).sum())
    assert bundle.has("energy_sum") and bundle.get("topk_count") is None
    summary = bundle.summary()
    for key in ("path", "model", "dataset", "samples", "tokens", "num_layers", "num_experts"):
        assert key in summary
    # safetensors' own reader sees the same values: our mmap parser agrees with the library
    from safetensors.numpy import load_file

    ref = load_file(str(path))
    for name, array in ref.items():
        np.testing.assert_array_equal(bundle.tensors[name], array)


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out" / "b.safetensors"
    write_bundle(path, _tensors(), _meta())
    assert [p.name for p in path.parent.iterdir()] == ["b.safetensors"]


def test_written_file_gets_the_mode_open_would_give(tmp_path):
    """Not mkstemp's private 0600: the umask decides, as for any file the user writes."""
    import os

    old = os.umask(0o027)
    try:
        path = tmp_path / "b.safetensors"
        write_bundle(path, _tensors(), _meta())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_writer_refuses_invalid_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.safetensors"
    bad = _tensors()
    bad["token_count"] = np.zeros(3, dtype=np.int64)
    with pytest.raises(BundleError, match="zero tokens"):
        write_bundle(path, bad, _meta())
    with pytest.raises(BundleError, match="unknown tensor"):
        write_bundle(path, {**_tensors(), "prob_sums": np.ones(1)}, _meta())
    assert not path.exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t, m: m.pop("model"), "missing metadata key 'model'"),
        (lambda t, m: m.update(format="something-else"), "metadata format"),
        (lambda t, m: m.update(format_version="2"), "format_version"),
        (lambda t, m: m.update(num_experts="eight"), "not an integer"),
        (lambda t, m: m.update(num_experts="5"), "metadata says"),
        (lambda t, m: t.pop("token_count"), "missing tensor 'token_count'"),
        (lambda t, m: t.update(prob_sum=np.ones((3, 2, 4), dtype=np.float64)), "dtype float64"),
        (lambda t, m: t.update(token_count=np.full(2, 4, dtype=np.int64)), "expected \\[3\\]"),
        (
            lambda t, m: t.update(prob_sum=np.ones((3, 8), dtype=np.float32)),
            "expected \\[N, L, E\\]",
        ),
        (
            lambda t, m: t.update(energy_sum=np.ones((3, 2, 5), dtype=np.float32)),
            "'energy_sum' has shape",
        ),
        (
            lambda t, m: t.update(topk_count=np.ones((3, 2, 4), dtype=np.float32)),
            "'topk_count' has dtype",
        ),
        (
            lambda t, m: t.update(
                prob_sum=np.ones((0, 2, 4), dtype=np.float32),
                token_count=np.zeros(0, dtype=np.int64),
                example_ids=np.zeros(0, dtype=np.int64),
            ),
            "no samples",
        ),
        (lambda t, m: t.update(token_count=np.zeros(3, dtype=np.int64)), "zero tokens"),
    ],
)
def test_invalid_bundles_are_refused_with_file_named(tmp_path, mutate, message):
    tensors, meta = _tensors(), _meta()
    mutate(tensors, meta)
    path = tmp_path / "x.safetensors"
    _raw_safetensors(path, tensors, meta)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(path)
    assert str(path) in str(info.value)


def test_missing_empty_garbage_truncated(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        load_bundle(tmp_path / "nope.safetensors")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(BundleError, match="empty file"):
        load_bundle(empty)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a bundle at all, just some text" * 10)
    with pytest.raises(BundleError, match="not a safetensors file"):
        load_bundle(garbage)
    notjson = tmp_path / "notjson.safetensors"
    notjson.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{]" + b"\0" * 16)
    with pytest.raises(BundleError, match="header is not JSON"):
        load_bundle(notjson)
    good = make_bundle(tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(BundleError, match="truncated"):
        load_bundle(truncated)
    with pytest.raises(BundleError, match="is a folder"):
        load_bundle(tmp_path)


def test_header_offsets_that_lie_are_refused(tmp_path):
    good = make_bundle(tmp_path / "good.safetensors", energy=False)
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    begin, end = header["prob_sum"]["data_offsets"]
    header["prob_sum"]["data_offsets"] = [begin, end - 4]
    body = json.dumps(header).encode()
    body += b" " * (n - len(body)) if len(body) <= n else b""
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n :])
    with pytest.raises(BundleError, match="byte range"):
        load_bundle(bad)


def test_find_bundles_expands_folders(tmp_path):
    make_bundle(tmp_path / "b.safetensors")
    make_bundle(tmp_path / "a.safetensors")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_bundles([tmp_path])] == ["a.safetensors", "b.safetensors"]


def test_deferred_value_checks_refuse_a_bad_value_on_first_read_not_at_open(tmp_path):
    """The app opens many bundles by header; their values are checked when first read."""
    tensors, meta = _tensors(n=3), _meta()
    tensors["prob_sum"][2, 1, 3] = np.nan
    path = tmp_path / "nan.safetensors"
    _raw_safetensors(path, tensors, meta)
    with pytest.raises(BundleError, match="prob_sum"):
        load_bundle(path)
    bundle = load_bundle(path, defer_value_checks=True)  # the header is fine: opens
    assert (bundle.num_samples, bundle.num_layers, bundle.num_experts) == (3, 2, 4)
    assert bundle.has("prob_sum") and not bundle.has("energy_sum")
    assert bundle.get("energy_sum") is None
    for read in (lambda: bundle.prob_sum, lambda: bundle.token_count, lambda: bundle.num_tokens):
        with pytest.raises(BundleError, match="prob_sum") as info:  # every read, every time
            read()
        assert str(path) in str(info.value)
    assert not bundle.tensors.checked


def test_deferred_value_checks_still_refuse_a_bad_header_at_open(tmp_path):
    tensors, meta = _tensors(), _meta(num_layers="3")
    path = tmp_path / "shape.safetensors"
    _raw_safetensors(path, tensors, meta)
    with pytest.raises(BundleError, match="metadata says"):
        load_bundle(path, defer_value_checks=True)


def test_a_deferred_bundle_reads_the_same_values_once_checked(tmp_path):
    path = make_bundle(tmp_path / "a.safetensors", n=5, layers=2, experts=4)
    eager, lazy = load_bundle(path), load_bundle(path, defer_value_checks=True)
    assert not lazy.tensors.checked
    np.testing.assert_array_equal(lazy.prob_sum, eager.prob_sum)
    assert lazy.tensors.checked
    assert lazy.summary() == eager.summary()


def count_summing_passes(monkeypatch) -> list[tuple[int, ...]]:
    """The shape of every array summed over samples by a bundle's reads, in order."""
    import core.formats.bundle_values as bundle_values
    import core.sample_sums as sample_sums

    passes: list[tuple[int, ...]] = []
    real = sample_sums.blocked_sums

    def counting(array, *args, **kwargs):
        passes.append(tuple(array.shape))
        return real(array, *args, **kwargs)

    monkeypatch.setattr(bundle_values, "blocked_sums", counting)
    monkeypatch.setattr("core.formats.bundle.blocked_sums", counting)
    return passes


@pytest.mark.parametrize("n", [5, 1_003])  # single-sample units, and blocks of sequences (--ci)
def test_a_deferred_bundle_is_read_once_for_its_check_and_its_sums(tmp_path, monkeypatch, n):
    """The value check and the sums are one pass (the app's cold start reads A and B so).

    The units' sums of ``--ci`` are formed later, on first use: the app that defers
    computes its intervals in another process.
    """
    path = make_bundle(tmp_path / "a.safetensors", n=n, layers=2, experts=4, energy=True)
    eager = load_bundle(path)
    passes = count_summing_passes(monkeypatch)
    lazy = load_bundle(path, defer_value_checks=True)
    assert passes == []  # opening reads no values
    for name in ("prob_sum", "energy_sum"):
        np.testing.assert_array_equal(lazy.total(name), eager.total(name))
    assert passes == [(n, 2, 4), (n, 2, 4)]  # one pass per float statistic, the check's
    # By hand: the float64 sum over samples; above 1,000 samples the sums run in float32 runs
    # of at most 32 samples (docs/formats.md), each within 31 * 2**-24 relative of exact.
    by_hand = np.asarray(eager.prob_sum, np.float64).sum(axis=0)
    np.testing.assert_allclose(lazy.total("prob_sum"), by_hand, rtol=1e-12 if n <= 1_000 else 2e-6)
    for name in ("prob_sum", "energy_sum"):
        units, expected = lazy.unit_sums(name), eager.unit_sums(name)
        assert (units is None) == (expected is None) == (n <= 1_000)
        if expected is not None:
            np.testing.assert_array_equal(units, expected)
    assert len(passes) == (2 if n <= 1_000 else 4)  # units of sequences: a pass each, on use


def test_threads_asking_a_deferred_bundle_for_a_total_at_once_share_one_pass(tmp_path, monkeypatch):
    """The app's Matrix worker and its UI thread may both ask for a new A's signature."""
    import threading
    import time

    from core.formats.bundle import Bundle

    path = make_bundle(tmp_path / "a.safetensors", n=400, layers=3, experts=8, energy=True)
    passes = count_summing_passes(monkeypatch)
    keep = Bundle._keep

    def slow_keep(self, *args):  # widens the moment between the check and its sums being kept
        time.sleep(0.05)
        keep(self, *args)

    monkeypatch.setattr(Bundle, "_keep", slow_keep)
    lazy = load_bundle(path, defer_value_checks=True)
    start = threading.Barrier(4)
    results = []

    def ask() -> None:
        start.wait()
        results.append(lazy.total("prob_sum"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(passes) == 2  # prob_sum and energy_sum, by the one check
    expected = np.asarray(lazy.prob_sum, np.float64).sum(axis=0)
    for total in results:
        np.testing.assert_allclose(total, expected, rtol=1e-12)
