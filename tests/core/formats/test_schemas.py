"""The JSON Schemas of the mask and evaluation formats: every file the code writes validates,
and broken documents are rejected by the schema and by the reader alike."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import core.formats
from core.errors import LensError
from core.formats.bundle import load_bundle
from core.formats.evaluation import Evaluation, MaskResult, read_evaluation, write_evaluation
from core.formats.mask import Mask, read_mask, write_mask
from core.masks.criteria import CRITERIA, AimerScores, NaeeScores
from core.masks.make import make_mask
from tests.conftest import make_bundle, routed_counts

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = Path(core.formats.__file__).parent / "schemas"
L, E, K = 3, 8, 2
STATS = ("topk_count", "weight_sum", "act_norm_sum", "act_sqnorm_sum", "reap_sum")


def _validator(name: str) -> Draft202012Validator:
    docs = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources(
        (name, Resource.from_contents(doc)) for name, doc in docs.items()
    )
    Draft202012Validator.check_schema(docs[name])
    return Draft202012Validator(docs[name], registry=registry)


MASK = _validator("mask.schema.json")
EVALUATION = _validator("evaluation.schema.json")


def _errors(validator: Draft202012Validator, doc: object) -> list[str]:
    return [error.message for error in validator.iter_errors(doc)]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles")
    rng = np.random.default_rng(2)
    out = []
    for i in range(2):
        n = 5
        extra = {name: (rng.random((n, L, E)) * 9).astype(np.float32) for name in STATS}
        extra["token_count"] = rng.integers(1, 9, size=n)
        extra["topk_count"] = routed_counts(rng, extra["token_count"], L, E, K)
        extra["reap_literal_sum"] = (rng.random((n, L, E)) * 9).astype(np.float32)
        extra["reap_literal_count"] = rng.integers(0, 9, size=(n, L, E)).astype(np.int32)
        out.append(
            make_bundle(folder / f"b{i}.safetensors", n=n, layers=L, experts=E, seed=i, extra=extra)
        )
    return [load_bundle(p) for p in out]


def _made_masks(bundles) -> list[Mask]:
    aimer = AimerScores(model="ckpt", scores=np.arange(L * E, dtype=float).reshape(L, E), top_k=K)
    masks = []
    naee = NaeeScores(
        model="ckpt",
        scores=np.arange(L * E, dtype=float).reshape(L, E),
        r=4,
        top_k=K,
        metadata={"search": "exact", "layers": [{"method": "exact", "objective": 1.5}] * L},
    )
    for criterion in CRITERIA:
        given = {"aimer": {"aimer": aimer}, "naee": {"naee": naee}}.get(criterion, {})
        used = [] if criterion in ("aimer", "naee") else bundles
        masks.append(make_mask(criterion, used, r=4, **given))
        if criterion != "naee":  # NAEE's search is for one r, never a global budget
            masks.append(make_mask(criterion, used, budget=L * K + 5, **given))
    masks.append(make_mask("mass", bundles, r=4, groups=2))
    masks.append(Mask(model="m", num_experts=E, criterion="hand", sources=[], layers=[[0]] * L))
    return masks


def test_schemas_ship_as_package_data():
    config = (ROOT / "pyproject.toml").read_text()
    assert '"formats/schemas/*.schema.json"' in config
    assert {p.name for p in SCHEMAS.glob("*.schema.json")} == {
        "mask.schema.json",
        "evaluation.schema.json",
    }


def test_every_mask_the_code_writes_validates(bundles, tmp_path):
    for i, mask in enumerate(_made_masks(bundles)):
        path = write_mask(tmp_path / f"{i}.json", mask)
        assert _errors(MASK, json.loads(path.read_text())) == [], mask.criterion
        again = write_mask(tmp_path / f"{i}-again.json", read_mask(path))
        assert _errors(MASK, json.loads(again.read_text())) == []


def test_every_evaluation_the_code_writes_validates(bundles, tmp_path):
    results = [
        MaskResult(mask, f"m{i}", 2.5 + i, float(np.exp(2.5 + i)), float(i), 0.4, 0.9)
        for i, mask in enumerate(_made_masks(bundles))
    ]
    results[0] = MaskResult(results[0].mask, "x", 2.0, 7.4, -0.1, 0.5, 1.0, {"lm_eval": {"a": 1}})
    full = Evaluation(
        model="m", data="held.jsonl", dataset="held", samples=4, tokens=100, num_layers=L,
        num_experts=E, top_k=K, baseline={"loss": 2.1, "perplexity": 8.2, "top1_accuracy": 0.5},
        masks=results, family="mixtral", max_length=64, extra={"command": "lens evaluate"},
    )  # fmt: skip
    bare = Evaluation(
        model="m", data="d", dataset="d", samples=0, tokens=0, num_layers=L, num_experts=E,
        top_k=None, baseline={"loss": 1.0, "perplexity": 2.7, "top1_accuracy": 0.0}, masks=[],
    )  # fmt: skip
    for evaluation in (full, bare):
        path = write_evaluation(tmp_path / "e.json", evaluation)
        assert _errors(EVALUATION, json.loads(path.read_text())) == []
        read_evaluation(path)


def test_the_shipped_and_golden_files_validate():
    evaluations = sorted((ROOT / "sample_stats").glob("eval_*.json"))
    masks = sorted((ROOT / "tests" / "golden").glob("*.mask.json"))
    assert evaluations and masks
    for path in evaluations:
        assert _errors(EVALUATION, json.loads(path.read_text())) == [], path
    for path in masks:
        assert _errors(MASK, json.loads(path.read_text())) == [], path


def _mask_doc() -> dict:
    return {
        "format": "expert-calibration-lens/mask",
        "model": "m",
        "num_experts": 4,
        "criterion": "mass",
        "sources": [],
        "top_k": 1,
        "budget": {"kind": "per_layer", "r": 2},
        "layers": [[0, 1], [2, 3]],
    }


def _set(doc: dict, dotted: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    target = doc
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


_DELETE = object()

BROKEN_MASKS = [
    ("format", "expert-calibration-lens/other"),
    ("layers", _DELETE),
    ("layers", []),
    ("layers.1", []),
    ("layers.1", [2, 2]),
    ("layers.0", [0, "1"]),
    ("num_experts", 0),
    ("num_experts", True),
    ("sources", "b.safetensors"),
    ("top_k", -1),
]


@pytest.mark.parametrize("where,value", BROKEN_MASKS)
def test_schema_and_reader_both_reject_broken_masks(tmp_path, where, value):
    doc = _set(_mask_doc(), where, value)
    assert _errors(MASK, doc) != []
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LensError):
        read_mask(path)


def test_schema_rejects_a_budget_of_unknown_kind():
    assert _errors(MASK, _mask_doc()) == []
    assert _errors(MASK, _set(_mask_doc(), "budget", {"kind": "per_layer"})) != []
    assert _errors(MASK, _set(_mask_doc(), "budget", {"kind": "half", "r": 2})) != []


def _evaluation_doc() -> dict:
    path = ROOT / "sample_stats" / "eval_wiki_en.json"
    return json.loads(path.read_text())


BROKEN_EVALUATIONS = [
    ("format_version", 2),
    ("format", "expert-calibration-lens/mask"),
    ("baseline", _DELETE),
    ("baseline.loss", "2.3"),
    ("samples", -1),
    ("masks", {}),
    ("masks.0.layers", _DELETE),
    ("masks.0.loss_increase", None),
    ("masks.0.layers.0", [1, 1]),
]


@pytest.mark.parametrize("where,value", BROKEN_EVALUATIONS)
def test_schema_and_reader_both_reject_broken_evaluations(tmp_path, where, value):
    doc = _set(_evaluation_doc(), where, value)
    assert _errors(EVALUATION, doc) != []
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LensError):
        read_evaluation(path)
