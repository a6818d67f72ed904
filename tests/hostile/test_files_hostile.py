"""Hostile files through every reader: each is refused in one clean line, and nothing changes.

Bundles (safetensors headers, impossible statistics, the paper's ``.pt``),
masks, evaluations and prune source shards are damaged one thing at a time
(:mod:`tests.hostile.files`) and given to the commands that read them. The
contract is the command-line suite's: non-zero exit, no traceback, one
``error:`` line naming the file and the problem, nothing on stdout, every file
byte-identical.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.formats.bundle import bundle_metadata
from tests.conftest import routed_counts
from tests.hostile.conftest import E, L, assert_clean_refusal, invoke, snapshot
from tests.hostile.files import (
    edit_header,
    edit_json,
    edit_tensor,
    header_and_data,
    nested,
    write_raw,
)

Maker = Callable[[Path, Path], object]  # (workspace, output path) -> writes the file

# --------------------------------------------------------------------- bundles


def _shape(value: object) -> Maker:
    return lambda ws, out: edit_header(
        ws / "a.safetensors", out, lambda h: h["prob_sum"].update(shape=value)
    )


def _offsets(name: str, value: object) -> Maker:
    return lambda ws, out: edit_header(
        ws / "a.safetensors", out, lambda h: h[name].update(data_offsets=value)
    )


def _header(edit: Callable[[dict], object]) -> Maker:
    return lambda ws, out: edit_header(ws / "a.safetensors", out, edit)


def _raw_header(raw: bytes, length: int | None = None) -> Maker:
    def make(ws: Path, out: Path) -> None:
        _, data = header_and_data(ws / "a.safetensors")
        write_raw(out, raw, data, length=length)

    return make


def _values(name: str, edit: Callable[[np.ndarray], None]) -> Maker:
    return lambda ws, out: edit_tensor(ws / "a.safetensors", out, name, edit)


def _meta(**changes: str) -> Maker:
    return _header(lambda h: h["__metadata__"].update(changes))


def _with_topk(edit: Callable[[np.ndarray], None]) -> Maker:
    def make(ws: Path, out: Path) -> None:
        rng = np.random.default_rng(5)
        tokens = rng.integers(1, 9, size=4)
        counts = routed_counts(rng, tokens, L, E, 2)
        edit(counts)
        tensors = {
            "prob_sum": (np.full((4, L, E), 1.0 / E) * tokens[:, None, None]).astype(np.float32),
            "token_count": tokens.astype(np.int64),
            "example_ids": np.arange(4, dtype=np.int64),
            "topk_count": counts.astype(np.int32),
        }
        meta = bundle_metadata(model="tiny-moe", dataset="t", num_layers=L, num_experts=E, top_k=2)
        from safetensors.numpy import save_file  # write_bundle would refuse it: write it raw

        save_file(tensors, str(out), metadata=meta)

    return make


def _first(value: float) -> Callable[[np.ndarray], None]:
    def edit(a: np.ndarray) -> None:
        a[2, 1, 3] = value

    return edit


def _zero_layer(a: np.ndarray) -> None:
    a[:, 1, :] = 0


def _scale_row(a: np.ndarray) -> None:
    a[4, 0, :] *= 2


BUNDLES: list[tuple[str, Maker, str]] = [
    ("shape-negative", _shape([-6, -2, 4]), "shape"),
    ("shape-2**62", _shape([2**62, 4]), "byte range"),
    ("shape-2**70", _shape([2**70]), "byte range"),
    ("shape-float", _shape([6.7]), "shape"),
    ("shape-float-integral", _shape([12.0, 3, 8]), "shape"),
    ("shape-bool", _shape([True, 3, 8]), "shape"),
    ("shape-string", _shape("12,3,8"), "shape"),
    ("shape-nested", _shape([[12], 3, 8]), "shape"),
    ("shape-null", _shape(None), "shape"),
    ("shape-mismatch", _shape([12, 3, 4]), "byte range"),
    ("offsets-overlap", _offsets("energy_sum", [1344, 2496]), "overlap"),
    ("offsets-overlap-partial", _offsets("token_count", [0, 96]), "overlap"),
    ("offsets-out-of-file", _offsets("prob_sum", [1344 + 10**6, 2496 + 10**6]), ""),
    ("offsets-gap", _offsets("prob_sum", [1348, 2500]), "gap"),
    ("offsets-reversed", _offsets("prob_sum", [2496, 1344]), "byte range"),
    ("offsets-float", _offsets("prob_sum", [1344.0, 2496.0]), "byte range"),
    ("offsets-negative", _offsets("prob_sum", [-8, 1144]), "byte range"),
    ("offsets-three", _offsets("prob_sum", [1344, 2496, 3000]), "byte range"),
    ("offsets-huge", _offsets("prob_sum", [2**70, 2**70 + 1152]), ""),
    ("dtype-unknown", _header(lambda h: h["prob_sum"].update(dtype="Q8")), "dtype"),
    ("dtype-number", _header(lambda h: h["prob_sum"].update(dtype=5)), "dtype"),
    (
        "dtype-f64",
        _header(lambda h: h["prob_sum"].update(dtype="F64", shape=[12, 3, 4])),
        "dtype",
    ),  # fmt: skip
    (
        "token-count-f32",
        _header(lambda h: h["token_count"].update(dtype="F32", shape=[24])),
        "token_count",
    ),  # fmt: skip
    ("prob-sum-2d", _header(lambda h: h["prob_sum"].update(shape=[36, 8])), "prob_sum"),
    (
        "entry-missing-offsets",
        _header(lambda h: h["prob_sum"].__delitem__("data_offsets")),
        "malformed",
    ),
    ("entry-string", _header(lambda h: h.update(prob_sum="F32")), "malformed"),
    ("entry-list", _header(lambda h: h.update(prob_sum=[1, 2])), "malformed"),
    ("header-list", _header(lambda h: [h]), "not an object"),
    ("header-deep", _raw_header(nested(100_000).encode()), "nested"),
    (
        "header-deep-object",
        _raw_header(('{"a":' * 50_000 + "1" + "}" * 50_000).encode()),
        "nested",
    ),  # fmt: skip
    (
        "metadata-deep",
        _raw_header(('{"__metadata__": {"a": ' + nested(5000) + "}}").encode()),
        "nested",
    ),  # fmt: skip
    (
        "metadata-number",
        _header(lambda h: h["__metadata__"].update(num_layers=3)),
        "__metadata__",
    ),  # fmt: skip
    (
        "metadata-dict",
        _header(lambda h: h["__metadata__"].update(model={"a": "b"})),
        "__metadata__",
    ),  # fmt: skip
    ("metadata-list", _header(lambda h: h.update(__metadata__=["a"])), "__metadata__"),
    ("header-not-utf8", _raw_header(b'{"a": "\xff\xfe"}' + b" " * 6), "UTF-8"),
    ("header-nan", _raw_header(b'{"__metadata__": {}, "x": NaN}'), "NaN"),
    (
        "header-duplicate-key",
        _raw_header(
            b'{"prob_sum": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, '
            b'"prob_sum": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}'
        ),
        "twice",
    ),
    ("header-length-huge", _raw_header(b"{}", length=2**63), "header length"),
    ("header-length-zero", _raw_header(b"{}", length=0), "header length"),
    ("header-length-past-end", _raw_header(b"{}", length=10**9), "header length"),
    (
        "trailing-bytes",
        lambda ws, out: out.write_bytes((ws / "a.safetensors").read_bytes() + b"junk"),
        "after the last tensor",
    ),  # fmt: skip
    ("prob-nan", _values("prob_sum", _first(np.nan)), "NaN at [2, 1, 3]"),
    ("prob-inf", _values("prob_sum", _first(np.inf)), "infinite at [2, 1, 3]"),
    ("prob-neg-inf", _values("prob_sum", _first(-np.inf)), "infinite at [2, 1, 3]"),
    ("prob-negative", _values("prob_sum", _first(-0.5)), "negative at [2, 1, 3]"),
    ("prob-zero-layer", _values("prob_sum", _zero_layer), "row [0, 1]"),
    ("prob-row-scaled", _values("prob_sum", _scale_row), "row [4, 0]"),
    ("energy-nan", _values("energy_sum", _first(np.nan)), "'energy_sum' is NaN"),
    ("energy-negative", _values("energy_sum", _first(-1.0)), "'energy_sum' is negative"),
    (
        "tokens-negative",
        _values("token_count", lambda a: a.__setitem__(3, -5)),
        "'token_count' is negative at index 3",
    ),  # fmt: skip
    (
        "tokens-overflow",
        _values("token_count", lambda a: a.__setitem__(slice(None), 2**62)),
        "int64",
    ),  # fmt: skip
    (
        "tokens-zero",
        _values("token_count", lambda a: a.__setitem__(slice(None), 0)),
        "zero tokens",
    ),  # fmt: skip
    ("ids-negative", _values("example_ids", lambda a: a.__setitem__(0, -1)), "example_ids"),
    ("topk-negative", _with_topk(lambda c: c.__setitem__((1, 2, 3), -1)), "negative"),
    (
        "topk-inconsistent",
        _with_topk(lambda c: c.__setitem__((1, 2, 3), c[1, 2, 3] + 1)),
        "'topk_count' row [1, 2]",
    ),  # fmt: skip
    ("meta-layers", _meta(num_layers="4"), "num_layers=4"),
    ("meta-layers-text", _meta(num_layers="three"), "num_layers"),
    ("meta-top-k", _meta(top_k="99"), "top_k"),
    ("meta-format", _meta(format="something-else"), "format"),
    ("meta-version", _meta(format_version="9"), "format_version"),
]

BUNDLE_COMMANDS = {
    "stats": "stats {f}",
    "compare": "compare {ws}/a.safetensors {f} --r 2",
    "matrix": "matrix {ws}/a.safetensors {f} --r 2",
}
BUNDLE_CASES = [
    pytest.param(
        maker, command.format(ws="{ws}", f="{ws}/bad.safetensors"), needle, id=f"{verb}-{name}"
    )  # fmt: skip
    for name, maker, needle in BUNDLES
    for verb, command in BUNDLE_COMMANDS.items()
]

# --------------------------------------------------------------------- masks


def _mask(edit: Callable[[dict], object]) -> Maker:
    return lambda ws, out: edit_json(ws / "mask.json", out, edit)


def _text(raw: bytes) -> Maker:
    return lambda ws, out: out.write_bytes(raw)


MASKS: list[tuple[str, Maker, str]] = [
    ("not-utf8", _text(b'{"format": "\xff"}'), "UTF-8"),
    ("deep", _text(nested(100_000).encode()), "nested"),
    ("deep-object", _text(('{"a":' * 10_000 + "1" + "}" * 10_000).encode()), "nested"),
    ("huge-int", _text(b'{"num_experts": ' + b"9" * 5000 + b"}"), "not valid JSON"),
    ("nan-literal", _text(b'{"num_experts": NaN}'), "NaN"),
    ("infinity-literal", _text(b'{"num_experts": -Infinity}'), "Infinity"),
    (
        "duplicate-key",
        _text(b'{"format": "x", "format": "expert-calibration-lens/mask"}'),
        "twice",
    ),  # fmt: skip
    ("empty", _text(b""), "not valid JSON"),
    ("list", _text(b"[1, 2]"), "not an object"),
    ("experts-bool", _mask(lambda d: d.update(num_experts=True)), "num_experts"),
    ("experts-float", _mask(lambda d: d.update(num_experts=8.0)), "num_experts"),
    ("experts-huge", _mask(lambda d: d.update(num_experts=10**40)), "num_experts"),
    ("experts-string", _mask(lambda d: d.update(num_experts="8")), "num_experts"),
    ("layer-bool", _mask(lambda d: d["layers"].__setitem__(0, [True, 1])), "layer 0"),
    ("layer-float", _mask(lambda d: d["layers"].__setitem__(1, [0, 1.0])), "layer 1"),
    ("layer-out-of-range", _mask(lambda d: d["layers"].__setitem__(2, [0, 8])), "expert 8"),
    ("layer-negative", _mask(lambda d: d["layers"].__setitem__(2, [-1, 0])), "expert -1"),
    ("layer-duplicate", _mask(lambda d: d["layers"].__setitem__(0, [1, 1])), "more than once"),
    ("layer-huge-list", _mask(lambda d: d["layers"].__setitem__(0, list(range(9)))), "layer 0"),
    ("layers-dict", _mask(lambda d: d.update(layers={"0": [1]})), "layers"),
    ("model-number", _mask(lambda d: d.update(model=5)), "'model'"),
    ("criterion-list", _mask(lambda d: d.update(criterion=["mass"])), "'criterion'"),
    ("budget-string", _mask(lambda d: d.update(budget="8")), "'budget'"),
    ("top-k-bool", _mask(lambda d: d.update(top_k=True)), "top_k"),
    ("sources-string", _mask(lambda d: d.update(sources="a.safetensors")), "sources"),
    ("format-missing", _mask(lambda d: d.__delitem__("format")), "format"),
]
MASK_COMMANDS = {
    "masks-compare": "masks-compare {f}",
    "prune": "prune --model {ws}/model --mask {f} --out {ws}/pruned",
}
MASK_CASES = [
    pytest.param(maker, command.format(ws="{ws}", f="{ws}/bad.json"), needle, id=f"{verb}-{name}")
    for name, maker, needle in MASKS
    for verb, command in MASK_COMMANDS.items()
]

# --------------------------------------------------------------------- evaluations


def _evaluation(edit: Callable[[dict], object]) -> Maker:
    return lambda ws, out: edit_json(ws / "eval.json", out, edit)


EVALUATIONS: list[tuple[str, Maker, str]] = [
    ("not-utf8", _text(b'{"format": "\xff"}'), "UTF-8"),
    ("deep", _text(nested(100_000).encode()), "nested"),
    ("nan-literal", _text(b'{"format": NaN}'), "NaN"),
    ("duplicate-key", _text(b'{"masks": [], "masks": []}'), "twice"),
    ("samples-bool", _evaluation(lambda d: d.update(samples=True)), "'samples'"),
    ("tokens-float", _evaluation(lambda d: d.update(tokens=1.5)), "'tokens'"),
    ("tokens-huge", _evaluation(lambda d: d.update(tokens=-(10**40))), "'tokens'"),
    ("model-number", _evaluation(lambda d: d.update(model=7)), "'model'"),
    ("baseline-loss-bool", _evaluation(lambda d: d["baseline"].update(loss=True)), "loss"),
    ("baseline-loss-huge", _evaluation(lambda d: d["baseline"].update(loss=10**400)), "loss"),
    ("mask-loss-string", _evaluation(lambda d: d["masks"][0].update(loss="2.1")), "loss"),
    ("mask-name-number", _evaluation(lambda d: d["masks"][0].update(name=3)), "'name'"),
    (
        "mask-layers-bool",
        _evaluation(lambda d: d["masks"][0]["layers"].__setitem__(0, [True])),
        "layer 0",
    ),  # fmt: skip
    ("masks-dict", _evaluation(lambda d: d.update(masks={})), "masks"),
    ("version-2", _evaluation(lambda d: d.update(format_version=2)), "format_version"),
    ("version-bool", _evaluation(lambda d: d.update(format_version=True)), "format_version"),
]
EVALUATION_CASES = [
    pytest.param(
        maker,
        f"predict-vs-actual {{ws}}/bad.json {{ws}}/{target}",
        needle,
        id=f"predict-{where}-{name}",
    )  # fmt: skip
    for name, maker, needle in EVALUATIONS
    for where, target in (("file", "a.safetensors"), ("folder", "bundles"))
]

# --------------------------------------------------------------------- prune source shards


def _model_shard(edit: Callable[[dict], object] | None, trailing: bytes = b"") -> Maker:
    """The workspace model with one fused expert tensor whose header ``edit`` damages."""

    def make(ws: Path, out: Path) -> None:
        model = ws / "model"
        header = {
            "model.layers.0.mlp.experts.gate_up_proj": {
                "dtype": "F32", "shape": [8, 2, 2], "data_offsets": [0, 128]},
            "model.layers.0.mlp.gate.weight": {
                "dtype": "F32", "shape": [8, 2], "data_offsets": [128, 192]},
        }  # fmt: skip
        if edit is not None:
            edit(header)
        write_raw(model / "model.safetensors", header, bytes(192) + trailing)

    return make


SHARDS: list[tuple[str, Maker, str]] = [
    (
        "overlap",
        _model_shard(lambda h: h["model.layers.0.mlp.gate.weight"].update(data_offsets=[64, 128])),
        "overlap",
    ),  # fmt: skip
    (
        "out-of-file",
        _model_shard(
            lambda h: h["model.layers.0.mlp.gate.weight"].update(
                data_offsets=[128, 192 + 4096], shape=[8, 130]
            )
        ),
        "past the end",
    ),  # fmt: skip
    (
        "negative-shape",
        _model_shard(lambda h: h["model.layers.0.mlp.gate.weight"].update(shape=[-8, -2])),
        "shape",
    ),  # fmt: skip
    (
        "shape-range",
        _model_shard(lambda h: h["model.layers.0.mlp.gate.weight"].update(shape=[8, 3])),
        "byte range",
    ),  # fmt: skip
    (
        "deep",
        lambda ws, out: write_raw(
            ws / "model" / "model.safetensors", nested(100_000).encode(), b""
        ),
        "nested",
    ),  # fmt: skip
    ("trailing", _model_shard(None, b"junk"), "after the last tensor"),
    (
        "config-deep",
        lambda ws, out: (ws / "model" / "config.json").write_text(nested(100_000)),
        "nested",
    ),  # fmt: skip
    (
        "config-not-utf8",
        lambda ws, out: (ws / "model" / "config.json").write_bytes(b'{"\xff"}'),
        "UTF-8",
    ),  # fmt: skip
]
SHARD_CASES = [
    pytest.param(
        maker,
        "prune --model {ws}/model --mask {ws}/mask.json --out {ws}/pruned",
        needle,
        id=f"prune-shard-{name}",
    )  # fmt: skip
    for name, maker, needle in SHARDS
]


# --------------------------------------------------------------------- calibration data

DATA: list[tuple[str, str, bytes, str]] = [
    ("jsonl-deep", "jsonl", b'{"text": "ok"}\n' + nested(100_000).encode() + b"\n", "bad.jsonl:2"),
    ("jsonl-huge-int", "jsonl", b'{"text": "ok", "n": ' + b"9" * 5000 + b"}\n", "bad.jsonl:1"),
    ("json-deep", "json", nested(100_000).encode(), "bad.json"),
    ("json-not-utf8", "json", b'[{"text": "\xff"}]', "UTF-8"),
    ("jsonl-not-utf8", "jsonl", b'{"text": "\xff"}\n', "UTF-8"),
    ("txt-not-utf8", "txt", b"ok\n\xff\xfe\n", "UTF-8"),
]
DATA_CASES = [
    pytest.param(
        lambda ws, out, raw=raw: out.write_bytes(raw),
        f"{verb} -m {{ws}}/model -d {{ws}}/bad.{suffix} {extra}",
        needle,
        id=f"{verb}-data-{name}",
    )
    for name, suffix, raw, needle in DATA
    for verb, extra in (
        ("collect", "-o {ws}/new.safetensors"),
        ("evaluate", "--masks {ws}/mask.json"),
    )
] + [
    pytest.param(
        lambda ws, out, raw=raw: out.write_bytes(raw.replace(b'{"text": "ok"}\n', b"")),
        f"samples {{ws}}/a.safetensors --r 2 --data {{ws}}/bad.{suffix}",
        "bad.",
        id=f"samples-data-{name}",
    )
    for name, suffix, raw, needle in DATA
    if suffix != "txt"
]


@pytest.mark.parametrize(
    "maker,args,needle", BUNDLE_CASES + MASK_CASES + EVALUATION_CASES + SHARD_CASES + DATA_CASES
)
def test_hostile_file_is_refused_cleanly_and_changes_nothing(workspace, maker, args, needle):
    target = workspace / next(
        (w.removeprefix("{ws}/") for w in args.split() if w.startswith("{ws}/bad.")),
        "bad.safetensors",
    )
    maker(workspace, target)
    argv = shlex.split(args.replace("{ws}", str(workspace)))
    before = snapshot(workspace)
    result = invoke(argv)
    assert_clean_refusal(result, needle)
    if "model" not in args:  # prune's own checks name the shard; the others name the file
        assert target.name in result.stderr or "bundles" in args, result.stderr
    assert snapshot(workspace) == before, "a refused command changed the workspace"


def test_the_file_suite_covers_every_reader():
    assert len(BUNDLE_CASES) >= 150 and len(MASK_CASES) >= 40 and len(EVALUATION_CASES) >= 20


# --------------------------------------------------------------------- what loads, loads right


def test_bundle_header_in_any_key_order_loads(workspace):
    """safetensors lets the header list tensors in any order: only the byte ranges must tile."""
    out = workspace / "shuffled.safetensors"
    edit_header(workspace / "a.safetensors", out, lambda h: dict(reversed(list(h.items()))))
    result = invoke(["stats", str(out), "--json"])
    expected = invoke(["stats", str(workspace / "a.safetensors"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["layers"] == json.loads(expected.stdout)["layers"]


def test_negative_zero_is_zero_not_negative(workspace):
    out = edit_tensor(workspace / "a.safetensors", workspace / "z.safetensors", "energy_sum",
                      _first(-0.0))  # fmt: skip
    assert invoke(["stats", str(out)]).exit_code == 0
