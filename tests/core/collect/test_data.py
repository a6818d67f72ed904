"""Calibration data readers: positions as example ids, precise one-line errors."""

from __future__ import annotations

import json

import pytest

from core.collect.data import load_samples, samples_digest
from core.errors import LensError


def test_txt_uses_non_empty_lines_in_order(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("first\n\n  \nsecond line\r\nthird\n", encoding="utf-8")
    samples = load_samples(str(path))
    assert [(s.example_id, s.text) for s in samples] == [
        (0, "first"),
        (1, "second line"),
        (2, "third"),
    ]
    assert [s.text for s in load_samples(str(path), num_samples=2)] == ["first", "second line"]


def test_jsonl_json_and_parquet_keep_record_positions(tmp_path):
    records = [{"text": "a"}, {"text": ""}, {"text": "c", "other": 1}, {"text": "d"}]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps(records), encoding="utf-8")
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"data": records}), encoding="utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"body": [r["text"] for r in records]}), parquet)
    for path, field in ((jsonl, "text"), (as_json, "text"), (wrapped, "text"), (parquet, "body")):
        samples = load_samples(str(path), text_field=field)
        assert [(s.example_id, s.text) for s in samples] == [(0, "a"), (2, "c"), (3, "d")], path


def test_json_list_of_strings(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(["x", "y"]), encoding="utf-8")
    assert [s.text for s in load_samples(str(path))] == ["x", "y"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.txt", None, "no such file"),
        ("empty.txt", "", "empty file"),
        ("blank.txt", "\n   \n\n", "no usable samples"),
        ("bad.jsonl", '{"text": "ok"}\n{oops\n', "bad.jsonl:2: not valid JSON"),
        ("nofield.jsonl", '{"body": "x", "id": 1}\n', "no field 'text' (fields: body, id)"),
        ("number.jsonl", '{"text": 5}\n', "holds int, not a string"),
        ("d.csv", "text\nhello\n", "unsupported data file type '.csv'"),
        ("latin.txt", b"caf\xe9\n", "not UTF-8"),
    ],
)
def test_bad_data_gives_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LensError) as info:
        load_samples(str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_is_refused(tmp_path):
    with pytest.raises(LensError, match="is a folder"):
        load_samples(str(tmp_path))


def test_parquet_without_the_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"content": ["a"]}), path)
    with pytest.raises(LensError, match="no column 'text' \\(columns: content\\)"):
        load_samples(str(path))


def test_unknown_dataset_name_without_network_is_a_clean_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(LensError, match="loading it as a `datasets` name failed"):
        load_samples("no-such-org/no-such-dataset-xyz")


def test_digest_changes_with_content(tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("one\ntwo\n", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_text("one\ntwo!\n", encoding="utf-8")
    assert samples_digest(load_samples(str(a))) != samples_digest(load_samples(str(b)))
    assert samples_digest(load_samples(str(a))) == samples_digest(load_samples(str(a)))
