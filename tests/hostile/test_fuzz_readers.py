"""Property-based fuzzing of the file readers: a mutated file is refused in one line or read right.

Byte flips, truncations, insertions and edits of the JSON (a safetensors
header, a mask, an evaluation, a collection's ``run.json``) are applied to
valid files. Every reader must then either raise :class:`LensError` with a
one-line message, or return a result that is correct: a bundle that loads has
possible statistics and the engine's signature equals an independent loop; a
mask or evaluation that loads has the types and ranges of its format; a
``run.json`` is accepted exactly when it says what the run would write.

Bounded and reproducible: ``derandomize=True`` (examples follow from the test's
code), no example database, small files and ``max_examples`` so the file runs
in well under 20 s on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from core.collect.partial import RUN_FILE, PartialRun, partial_dir  # noqa: E402
from core.engine import Profile  # noqa: E402
from core.errors import LensError  # noqa: E402
from core.formats.bundle import load_bundle  # noqa: E402
from core.formats.evaluation import read_evaluation  # noqa: E402
from core.formats.mask import Mask, read_mask, write_mask  # noqa: E402
from tests.conftest import make_bundle  # noqa: E402
from tests.core import reference as ref  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------- mutations

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def byte_mutations(draw, good: bytes) -> bytes:
    """Flip, truncate or insert bytes of ``good``."""
    data = bytearray(good)
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "flips"]))
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if kind == "insert":
        at = draw(st.integers(0, len(data)))
        return bytes(data[:at]) + draw(st.binary(min_size=1, max_size=16)) + bytes(data[at:])
    for _ in range(1 if kind == "flip" else draw(st.integers(2, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON document (lists by index)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:4]):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def json_edits(draw, doc: object) -> object:
    """``doc`` with one value replaced by an arbitrary JSON value, or one key deleted."""
    doc = json.loads(json.dumps(doc))
    path = draw(st.sampled_from(_paths(doc)))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return doc


# --------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory) -> bytes:
    rng_tokens = np.random.default_rng(3).integers(1, 30, size=6)
    path = tmp_path_factory.mktemp("fuzz") / "good.safetensors"
    make_bundle(path, n=6, layers=2, experts=4, seed=3, token_count=rng_tokens)
    return path.read_bytes()


def _split(raw: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: object, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _bundle_or_error(path: Path):
    try:
        return load_bundle(path)
    except LensError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(str(path)), message
        return None


def _check_loaded_bundle(bundle) -> None:
    """A bundle that loaded must hold possible statistics, and the engine must read them right."""
    prob = np.asarray(bundle.prob_sum, dtype=np.float64)
    tokens = np.asarray(bundle.token_count)
    n, num_layers, num_experts = prob.shape
    assert (tokens >= 0).all() and tokens.sum() > 0
    for i in range(n):
        for layer in range(num_layers):
            row = [float(prob[i, layer, e]) for e in range(num_experts)]
            assert all(math.isfinite(v) and v >= 0 for v in row)
            # docs/formats.md: float32 sums of softmaxes, possibly of bfloat16 probabilities
            tolerance = tokens[i] * (2**-8 + (tokens[i] + 2 * num_experts + 8) * 2**-24)
            assert abs(sum(row) - tokens[i]) <= tolerance
    expected = ref.signature(prob.tolist(), tokens.tolist(), range(n))
    np.testing.assert_allclose(Profile(bundle).prob, np.array(expected), rtol=1e-12, atol=0)


@FUZZ
@given(data=st.data())
def test_mutated_bundle_bytes_are_refused_or_read_right(good_bundle, tmp_path, data):
    path = tmp_path / "m.safetensors"
    path.write_bytes(data.draw(byte_mutations(good_bundle)))
    bundle = _bundle_or_error(path)
    if bundle is not None:
        _check_loaded_bundle(bundle)


@FUZZ
@given(data=st.data())
def test_edited_bundle_headers_are_refused_or_read_right(good_bundle, tmp_path, data):
    header, payload = _split(good_bundle)
    path = tmp_path / "h.safetensors"
    path.write_bytes(_join(data.draw(json_edits(header)), payload))
    bundle = _bundle_or_error(path)
    if bundle is not None:
        _check_loaded_bundle(bundle)


# --------------------------------------------------------------------- masks


@pytest.fixture(scope="module")
def good_mask(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "good.json"
    mask = Mask(
        model="m", num_experts=8, criterion="mass", sources=["a.safetensors"],
        layers=[[0, 3], [1, 2, 7], [5, 6]], top_k=2, budget={"kind": "per_layer", "r": 2},
    )  # fmt: skip
    write_mask(path, mask)
    return path.read_bytes()


def _mask_or_error(path: Path):
    try:
        return read_mask(path)
    except LensError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
        return None


def _check_loaded_mask(mask: Mask, tmp_path: Path) -> None:
    def whole(value: object) -> bool:
        return type(value) is int

    assert whole(mask.num_experts) and mask.num_experts >= 1
    assert isinstance(mask.model, str) and isinstance(mask.criterion, str)
    assert mask.top_k is None or whole(mask.top_k)
    for ids in mask.layers:
        assert ids and all(whole(e) and 0 <= e < mask.num_experts for e in ids)
        assert ids == sorted(set(ids))
    again = write_mask(tmp_path / "again.json", mask)
    assert read_mask(again).layers == mask.layers


@FUZZ
@given(data=st.data())
def test_mutated_mask_bytes_are_refused_or_read_right(good_mask, tmp_path, data):
    path = tmp_path / "m.json"
    path.write_bytes(data.draw(byte_mutations(good_mask)))
    mask = _mask_or_error(path)
    if mask is not None:
        _check_loaded_mask(mask, tmp_path)


@FUZZ
@given(data=st.data())
def test_edited_masks_are_refused_or_read_right(good_mask, tmp_path, data):
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data.draw(json_edits(json.loads(good_mask)))))
    mask = _mask_or_error(path)
    if mask is not None:
        _check_loaded_mask(mask, tmp_path)


# --------------------------------------------------------------------- evaluations

GOOD_EVALUATION = (ROOT / "sample_stats" / "eval_wiki_en.json").read_bytes()


def _check_evaluation(path: Path) -> None:
    try:
        evaluation = read_evaluation(path)
    except LensError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
        return
    for value in (evaluation.samples, evaluation.tokens, evaluation.num_layers):
        assert type(value) is int and value >= 0
    numbers = [evaluation.baseline[k] for k in ("loss", "perplexity", "top1_accuracy")]
    for result in evaluation.masks:
        numbers += [result.loss, result.perplexity, result.loss_increase, result.top1_accuracy]
        assert all(0 <= e < evaluation.num_experts for ids in result.mask.layers for e in ids)
    assert all(type(v) in (int, float) and math.isfinite(v) for v in numbers)


@FUZZ
@given(data=st.data())
def test_mutated_evaluation_bytes_are_refused_or_read_right(tmp_path, data):
    path = tmp_path / "m.json"
    path.write_bytes(data.draw(byte_mutations(GOOD_EVALUATION)))
    _check_evaluation(path)


@FUZZ
@given(data=st.data())
def test_edited_evaluations_are_refused_or_read_right(tmp_path, data):
    path = tmp_path / "e.json"
    path.write_text(json.dumps(data.draw(json_edits(json.loads(GOOD_EVALUATION)))))
    _check_evaluation(path)


# --------------------------------------------------------------------- run.json

FINGERPRINT = {
    "model": "m", "data_sha256": "ab" * 8, "max_length": 24, "energy": True,
    "num_samples": 1, "chat_template": False, "text_field": "text",
}  # fmt: skip


def _check_run_json(tmp_path: Path, raw: bytes) -> None:
    out = Path(tempfile.mkdtemp(dir=tmp_path)) / "x.safetensors"
    folder = partial_dir(out)
    folder.mkdir()
    (folder / RUN_FILE).write_bytes(raw)
    try:
        PartialRun(out, FINGERPRINT).open()
        accepted = True
    except LensError as exc:
        assert "\n" not in str(exc), str(exc)
        accepted = False
    try:
        same = json.dumps(json.loads(raw), sort_keys=True) == json.dumps(
            FINGERPRINT, sort_keys=True
        )
    except (ValueError, RecursionError):
        same = False
    assert accepted == same  # resumed exactly when run.json says what this run would write


GOOD_RUN = json.dumps(FINGERPRINT, indent=1, sort_keys=True).encode()


@FUZZ
@given(data=st.data())
def test_mutated_run_json_resumes_only_the_same_run(tmp_path, data):
    _check_run_json(tmp_path, data.draw(byte_mutations(GOOD_RUN)))


@FUZZ
@given(data=st.data())
def test_edited_run_json_resumes_only_the_same_run(tmp_path, data):
    _check_run_json(tmp_path, json.dumps(data.draw(json_edits(FINGERPRINT))).encode())


def test_run_json_with_true_for_one_is_another_run(tmp_path):
    """``True == 1`` in Python: a run.json saying ``true`` where the run has 1 is not this run."""
    _check_run_json(tmp_path, json.dumps({**FINGERPRINT, "num_samples": True}).encode())
