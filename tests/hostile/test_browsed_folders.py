"""A ``*.json`` lying in a browsed folder never crashes the app or a command.

Deep nesting once raised RecursionError while the folder was scanned for
evaluation results, which took the app down (exit 0, no message). Such files
are not evaluations: they are skipped; a file that claims to be an evaluation
but is broken is reported (a notification, or one line in the CLI).
"""

from __future__ import annotations

import json
import shutil

import pytest

from lens_tui.app import build_app
from tests.conftest import make_bundle
from tests.hostile.conftest import ROOT, assert_clean_refusal, invoke
from tests.hostile.files import nested
from tests.lens_tui.helpers import async_test

JUNK = {
    "deep.json": nested(200_000).encode(),
    "deep-object.json": ('{"format":' * 50_000 + "1" + "}" * 50_000).encode(),
    "not-utf8.json": b'{"format": "\xff"}',
    "nan.json": b'{"format": NaN}',
    "huge.json": b'{"format": ' + b"9" * 10_000 + b"}",
    "list.json": b"[]",
}


@pytest.fixture
def folder(tmp_path):
    """A folder with a bundle of the sample evaluation's data, that evaluation, and junk JSON."""
    make_bundle(tmp_path / "wiki_en.safetensors", layers=4, experts=32, top_k=4, seed=1,
                dataset="wiki_en", model="artifacts/ecl-sample-gpt-oss")  # fmt: skip
    shutil.copyfile(ROOT / "sample_stats" / "eval_wiki_en.json", tmp_path / "eval_wiki_en.json")
    for name, raw in JUNK.items():
        (tmp_path / name).write_bytes(raw)
    return tmp_path


@async_test
async def test_the_app_skips_junk_json_in_a_folder_and_keeps_running(folder):
    app = build_app([folder])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        await pilot.pause()
        assert app.is_running
        assert [e.name for e in app.evaluations] == ["eval_wiki_en"]
        assert len(app.profiles) == 1


@async_test
async def test_a_broken_evaluation_in_a_folder_is_a_notification(folder):
    doc = json.loads((folder / "eval_wiki_en.json").read_text())
    doc["samples"] = True
    (folder / "eval_broken.json").write_text(json.dumps(doc))
    app = build_app([folder])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.is_running
        messages = [n.message for n in app._notifications]
        assert any("eval_broken.json" in m and "'samples'" in m for m in messages), messages


def test_predict_vs_actual_skips_junk_json_in_a_folder(folder):
    result = invoke(["predict-vs-actual", str(folder), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["points"]


def test_predict_vs_actual_names_a_broken_evaluation_in_a_folder(folder):
    doc = json.loads((folder / "eval_wiki_en.json").read_text())
    doc["baseline"]["loss"] = 10**400
    (folder / "eval_broken.json").write_text(json.dumps(doc))
    assert_clean_refusal(invoke(["predict-vs-actual", str(folder)]), "eval_broken.json", "loss")
