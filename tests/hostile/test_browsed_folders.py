"""A ``*.json`` lying in a browsed folder never crashes the app or a command.

Deep nesting once raised RecursionError while the folder was scanned for
evaluation results, which took the app down (exit 0, no message). Such files
are not evaluations: they are skipped; a file that claims to be an evaluation
but is broken is reported (a notification, or one line in the CLI).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lens_tui.app import build_app
from lens_tui.views.matrix import MatrixView
from tests.conftest import make_bundle
from tests.hostile.conftest import ROOT, assert_clean_refusal, invoke
from tests.hostile.files import nested
from tests.lens_tui.helpers import async_test, record_notifications, write_bundles

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
    notes = record_notifications(app)  # seen even if it timed out before the check (slow start)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.is_running
        messages = [message for _, message in notes]
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


def _with_a_nan(source, target):
    """A copy of bundle ``source`` whose header is fine but one value is NaN."""
    from safetensors.numpy import save_file

    from core.io.safetensors import read_safetensors

    metadata, mapped = read_safetensors(source)
    tensors = {name: np.array(array) for name, array in mapped.items()}
    tensors["prob_sum"][1, 2, 3] = np.nan
    save_file(tensors, str(target), metadata=metadata)
    return target


@async_test
async def test_a_corrupt_bundle_that_is_neither_a_nor_b_is_reported_when_the_matrix_reads_it(
    tmp_path,
):
    """Bundles other than A and B are opened by header; the Matrix view is where one is read."""
    paths = write_bundles(tmp_path)
    bad = _with_a_nan(paths[2], tmp_path / "zeta.safetensors")
    app = build_app([tmp_path])
    notes = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.labels == ["alpha", "beta", "gamma", "zeta"]  # opened: its header is fine
        assert not [m for severity, m in notes if severity == "error"]  # not read yet
        assert app.selection.profile_a.has_signature and app.selection.profile_b.has_signature
        assert not app.selection.profiles[3].has_signature
        await pilot.press("3")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.is_running
        errors = [m for severity, m in notes if severity == "error"]
        assert len(errors) == 1 and str(bad) in errors[0] and "prob_sum" in errors[0]
        assert "\n" not in errors[0] and "Traceback" not in errors[0]
        message = str(app.query_one("#matrix-message").render())
        assert str(bad) in message
        view = app.query_one(MatrixView)
        assert view.result is None
        await pilot.press("end", "space")  # untick zeta: the other three are compared
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [p.bundle.path for p in view.result.profiles] == paths
        assert len([m for severity, m in notes if severity == "error"]) == 1  # reported once


@async_test
async def test_a_corrupt_first_bundle_is_reported_at_start_and_the_next_two_are_a_and_b(
    tmp_path,
):
    paths = write_bundles(tmp_path)
    bad = _with_a_nan(paths[0], tmp_path / "aaa.safetensors")
    app = build_app([tmp_path])
    notes = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.is_running
        assert app.labels == ["alpha", "beta", "gamma"]
        assert (app.selection.label_a, app.selection.label_b) == ("alpha", "beta")
        errors = [m for severity, m in notes if severity == "error"]
        assert len(errors) == 1 and str(bad) in errors[0]
