"""core.textdata: the same numbering as collection, lazy reading, byte-exact export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.collect.data import load_samples
from core.errors import LensError
from core.textdata import TextSource, export_without, first_line

TXT = (
    b"first line\n\n   \nsecond\r\nthird\rfourth\n\xe3\x80\x80\n"  # CRLF, lone CR, ideographic space
    b"\tfifth with tab \n\n\nlast without newline"
)
JSONL = (
    b'{"text": "a"}\n\n{"text": ""}\n{"text": "b", "x": 1}\r\n  \n'
    b'{"text": "  "}\n{"text": "c\\nsecond line"}\n{"text": "d"}'
)


def collected(path: Path) -> dict[int, str]:
    return {s.example_id: s.text for s in load_samples(str(path))}


@pytest.mark.parametrize(("name", "content"), [("d.txt", TXT), ("d.jsonl", JSONL)])
def test_numbering_equals_collection(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    expected = collected(path)
    source = TextSource(path)
    found = source.texts(range(20))
    # Collection skips empty texts but keeps their ids; every id it used maps to its text.
    assert {i: found[i] for i in expected} == expected
    assert source.text(max(expected) + 5) is None


def test_json_and_parquet_numbering_equals_collection(tmp_path):
    records = [{"text": "a"}, {"text": ""}, {"text": "b"}, {"text": "   "}, {"text": "c"}]
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": records}))
    expected = collected(path)
    assert {i: TextSource(path).text(i) for i in expected} == expected
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"text": [f"row {i}" if i % 3 else "" for i in range(50)]})
    parquet = tmp_path / "d.parquet"
    pq.write_table(table, parquet, row_group_size=7)
    expected = collected(parquet)
    assert TextSource(parquet).texts(expected) == expected


def test_lookup_reads_only_as_far_as_asked(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        for i in range(5000):
            handle.write(json.dumps({"text": f"sample {i}"}) + "\n")
    source = TextSource(path)
    assert source.text(3) == "sample 3"
    assert len(source._offsets) == 4 and not source._exhausted
    assert source.texts([4999, 10]) == {4999: "sample 4999", 10: "sample 10"}


def test_export_keeps_the_other_lines_byte_for_byte(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(JSONL)
    out = tmp_path / "kept.jsonl"
    kept, dropped = export_without(path, out, [0, 3])
    lines = JSONL.splitlines(keepends=True)
    # ids: 0 ← line 0, 1 ← line 2, 2 ← line 3, 3 ← line 5, 4, 5 ← lines 6, 7
    expected = b"".join(line for k, line in enumerate(lines) if k not in (0, 5))
    assert out.read_bytes() == expected
    assert (kept, dropped) == (4, 2)
    assert path.read_bytes() == JSONL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "kept.jsonl"]


def test_export_txt_drops_exactly_the_flagged_samples(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(TXT)
    out = tmp_path / "kept.txt"
    export_without(path, out, [1, 5])
    before, after = collected(path), collected(out)
    assert list(after.values()) == [t for i, t in before.items() if i not in (1, 5)]
    assert b"third\rfourth\n" in out.read_bytes()


def test_export_refuses_its_input_and_other_formats(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(TXT)
    with pytest.raises(LensError, match="is an input"):
        export_without(path, path, [0])
    with pytest.raises(LensError, match="is an input"):
        export_without(path, tmp_path / "b.txt", [0], protected=[tmp_path / "b.txt"])
    with pytest.raises(LensError, match=r"\*\.txt"):
        export_without(path, tmp_path / "out.jsonl", [0])
    assert path.read_bytes() == TXT


def test_errors_are_one_line(tmp_path):
    with pytest.raises(LensError, match="no such file"):
        TextSource(tmp_path / "missing.txt")
    (tmp_path / "d.csv").write_text("a")
    with pytest.raises(LensError, match="unsupported"):
        TextSource(tmp_path / "d.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n')
    with pytest.raises(LensError, match="no field 'text'"):
        TextSource(bad).text(0)


def test_first_line():
    assert first_line("\n  hello world \nmore") == "hello world"
    assert first_line("x" * 100, width=10) == "x" * 9 + "…"
