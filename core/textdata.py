"""Lazy, read-only access to the user's calibration text by ``example_id``.

Bundles hold no text, only ``example_ids``: positions in the data file as
:mod:`core.collect.data` numbers them. This module finds those texts again
without loading the file: ``.txt`` and ``.jsonl`` are scanned line by line (in
binary, keeping each record's byte offset, so a 10 GB JSONL costs one pass and
two integers per record, and a lookup afterwards is one seek); ``.parquet``
reads only the row groups that hold the requested rows; ``.json`` is a single
JSON document and is parsed whole (use JSONL for large data).

Numbering is collection's, rule for rule (a test checks it against
:func:`core.collect.data.load_samples` on files with blank lines, empty texts,
CRLF and lone CR line ends):

- lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (Python's universal newlines,
  which collection reads with);
- ``.txt``: the id counts non-blank lines (``line.strip()`` non-empty); the
  text is the line without its line end;
- ``.jsonl``: blank lines are skipped, every other line is a record and takes
  the next id, even when its text is empty (collection skips such records but
  keeps their position);
- ``.json`` and ``.parquet``: the record / row index.

Files are only ever opened for reading. :func:`export_without` writes the data
minus some samples in the input's own format (``.txt`` and ``.jsonl`` lines
byte for byte) through a temporary file renamed into place, and refuses to
write over its input.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import LensError

SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, raw line with its line end) under universal-newline rules, lazily."""
    offset = 0
    with path.open("rb") as handle:
        for chunk in handle:  # splits on \n only; a \r\n pair stays in one chunk
            if b"\r" not in chunk or chunk.endswith(b"\r\n") and chunk.count(b"\r") == 1:
                yield offset, chunk
                offset += len(chunk)
                continue
            for match in _LINE.finditer(chunk):
                yield offset + match.start(), match.group()
            offset += len(chunk)


def _decode(raw: bytes, path: Path, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LensError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {offset + exc.start})"
        ) from None


def _strip_line_end(raw: bytes) -> bytes:
    return raw.rstrip(b"\r\n")


class TextSource:
    """One data file, opened read-only on demand, answering ``example_id`` → text.

    The record index (byte offset and length per id, for ``.txt`` / ``.jsonl``)
    is built lazily and only as far as the largest id asked for.
    """

    def __init__(self, path: str | os.PathLike[str], text_field: str = "text") -> None:
        self.path = Path(path)
        self.text_field = text_field
        self.kind = self.path.suffix.lower()
        if not self.path.exists():
            raise LensError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise LensError(
                f"{self.path}: is a folder; give a .txt, .jsonl, .json or .parquet file"
            )
        if self.kind not in SUFFIXES:
            raise LensError(
                f"{self.path}: unsupported data file type {self.path.suffix!r} "
                f"(use {', '.join(SUFFIXES)})"
            )
        self._offsets = array("q")
        self._lengths = array("q")
        self._lines: Iterator[tuple[int, bytes]] | None = None
        self._exhausted = False
        self._records: list | None = None  # .json only

    # ----------------------------------------------------------------- numbering

    def _is_record(self, raw: bytes, offset: int) -> bool:
        """Whether a raw line takes an id (txt and jsonl both skip blank lines)."""
        return bool(_decode(raw, self.path, offset).strip())

    def _index_up_to(self, example_id: int) -> None:
        if self._lines is None:
            self._lines = iter_lines(self.path)
        while len(self._offsets) <= example_id and not self._exhausted:
            for offset, raw in self._lines:
                if self._is_record(raw, offset):
                    self._offsets.append(offset)
                    self._lengths.append(len(raw))
                    if len(self._offsets) > example_id:
                        break
            else:
                self._exhausted = True

    def _raw_line(self, example_id: int) -> bytes | None:
        self._index_up_to(example_id)
        if example_id >= len(self._offsets):
            return None
        with self.path.open("rb") as handle:
            handle.seek(self._offsets[example_id])
            return handle.read(self._lengths[example_id])

    # ----------------------------------------------------------------- texts

    def text(self, example_id: int) -> str | None:
        """The text collection read for ``example_id``; ``None`` if the file has no such id."""
        return self.texts([example_id]).get(int(example_id))

    def texts(self, example_ids: Iterable[int]) -> dict[int, str]:
        """``{id: text}`` for the ids the file has (missing ids are left out)."""
        ids = sorted({int(i) for i in example_ids if int(i) >= 0})
        if not ids:
            return {}
        if self.kind in (".txt", ".jsonl"):
            out = {}
            for example_id in ids:
                raw = self._raw_line(example_id)
                if raw is None:
                    break
                out[example_id] = self._line_text(raw, example_id)
            return out
        if self.kind == ".json":
            records = self._json_records()
            return {i: self._field(records[i], i) for i in ids if i < len(records)}
        return self._parquet_texts(ids)

    def _line_text(self, raw: bytes, example_id: int) -> str:
        text = _decode(_strip_line_end(raw), self.path, self._offsets[example_id])
        if self.kind == ".txt":
            return text
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LensError(
                f"{self.path}: record {example_id} is not valid JSON ({exc.msg})"
            ) from None
        except (RecursionError, ValueError):  # nesting too deep; an int over 4,300 digits
            raise LensError(
                f"{self.path}: record {example_id} is not usable JSON (too deep or a huge number)"
            ) from None
        return self._field(record, example_id)

    def _field(self, record: object, example_id: int) -> str:
        if isinstance(record, str) and self.text_field == "text":
            return record
        if not isinstance(record, dict) or self.text_field not in record:
            raise LensError(f"{self.path}: record {example_id} has no field {self.text_field!r}")
        value = record[self.text_field]
        return value if isinstance(value, str) else ""

    def _json_records(self) -> list:
        if self._records is None:
            try:
                document = json.loads(self.path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise LensError(f"{self.path}: not a readable JSON file ({exc})") from None
            except (RecursionError, ValueError):  # too deep; an int over 4,300 digits
                raise LensError(
                    f"{self.path}: not a usable JSON file (nested too deep or a huge number)"
                ) from None
            if isinstance(document, dict) and isinstance(document.get("data"), list):
                document = document["data"]
            if not isinstance(document, list):
                raise LensError(
                    f"{self.path}: expected a JSON list of records (or {{'data': [...]}})"
                )
            self._records = document
        return self._records

    def _parquet_texts(self, ids: list[int]) -> dict[int, str]:
        parquet = _open_parquet(self.path)
        if self.text_field not in parquet.schema_arrow.names:
            raise LensError(f"{self.path}: no column {self.text_field!r}")
        out: dict[int, str] = {}
        start = 0
        wanted = iter(ids)
        target = next(wanted, None)
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if target is not None and target < start + rows:
                column = parquet.read_row_group(group, columns=[self.text_field]).column(0)
                while target is not None and target < start + rows:
                    value = column[target - start].as_py()
                    out[target] = value if isinstance(value, str) else ""
                    target = next(wanted, None)
            start += rows
        return out


def _open_parquet(path: Path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise LensError(f"{path}: reading parquet needs pyarrow") from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types
        raise LensError(f"{path}: not a readable parquet file ({exc})") from None


def first_line(text: str, width: int = 60) -> str:
    """The first non-blank line of a text, cut to ``width`` characters with an ellipsis."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


# --------------------------------------------------------------------------- export


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def export_without(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    drop_ids: Iterable[int],
    text_field: str = "text",
    protected: Iterable[str | os.PathLike[str]] = (),
) -> tuple[int, int]:
    """Write ``source`` minus the records ``drop_ids`` to ``out``, in the same format.

    ``.txt`` and ``.jsonl`` copy every other line byte for byte (blank lines,
    records beyond those collected and their line ends included), streaming,
    so the file is never loaded whole. ``.json`` rewrites the record list
    (keeping a ``{"data": [...]}`` wrapper); ``.parquet`` filters rows. The
    result appears under ``out`` only when complete. Returns (records kept,
    records dropped). Refuses an ``out`` that is the input or any ``protected``
    path (the bundle the ids came from).
    """
    data = TextSource(source, text_field)
    out = Path(out)
    if out.suffix.lower() != data.kind:
        raise LensError(f"{out}: export keeps the input's format; name it *{data.kind}")
    for path in (data.path, *map(Path, protected)):
        if _same_file(path, out) or out.resolve() == path.resolve():
            raise LensError(f"{out}: is an input of this command; choose another output file")
    drop = {int(i) for i in drop_ids}
    if data.kind in (".txt", ".jsonl"):
        return _export_lines(data, out, drop)
    if data.kind == ".json":
        return _export_json(data, out, drop)
    return _export_parquet(data, out, drop)


class _AtomicOutput:
    """A temporary file beside ``path``, fsynced and renamed over it on success."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self.tmp = Path(tmp)
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        self.handle = os.fdopen(fd, "wb")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.tmp, self.path)
        else:
            self.handle.close()
            self.tmp.unlink(missing_ok=True)


def _export_lines(data: TextSource, out: Path, drop: set[int]) -> tuple[int, int]:
    kept = dropped = 0
    example_id = 0
    with _AtomicOutput(out) as target:
        for offset, raw in iter_lines(data.path):
            if data._is_record(raw, offset):
                if example_id in drop:
                    dropped += 1
                    example_id += 1
                    continue
                kept += 1
                example_id += 1
            target.handle.write(raw)
    return kept, dropped


def _export_json(data: TextSource, out: Path, drop: set[int]) -> tuple[int, int]:
    records = data._json_records()
    kept_records = [r for i, r in enumerate(records) if i not in drop]
    document = json.loads(data.path.read_text(encoding="utf-8"))
    document = {**document, "data": kept_records} if isinstance(document, dict) else kept_records
    with _AtomicOutput(out) as target:
        target.handle.write(json.dumps(document, ensure_ascii=False).encode("utf-8"))
    return len(kept_records), len(records) - len(kept_records)


def _export_parquet(data: TextSource, out: Path, drop: set[int]) -> tuple[int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _open_parquet(data.path).read()
    keep = [i not in drop for i in range(table.num_rows)]
    filtered = table.filter(pa.array(keep))
    with _AtomicOutput(out) as target:
        pq.write_table(filtered, target.handle)
    return filtered.num_rows, table.num_rows - filtered.num_rows


# --------------------------------------------------------------------------- a bundle's own data


def recorded_data_file(
    metadata: dict[str, str], bundle_path: str | os.PathLike[str]
) -> Path | None:
    """The data file a bundle was collected from, if it is still on disk; ``None`` otherwise.

    Collection records the path it was given (``data_source``, and ``data`` in
    ``collect_args``), often relative to the folder it ran in. That folder is
    tried as the current one, as the bundle's own folder, and as the folder the
    bundle's recorded output path (``collect_args.out``) was relative to (for
    ``sample_stats/x.safetensors`` written from a checkout: the checkout), so a
    bundle moved together with its data is still matched. Only files of a kind
    :class:`TextSource` reads count; a ``datasets`` name never does.
    """
    try:
        args = json.loads(metadata.get("collect_args") or "{}")
    except json.JSONDecodeError:
        args = {}
    args = args if isinstance(args, dict) else {}
    recorded = [metadata.get("data_source"), args.get("data")]
    bundle = Path(bundle_path).resolve()
    roots = [Path.cwd(), bundle.parent]
    out = args.get("out")
    if isinstance(out, str) and out and not Path(out).is_absolute():
        depth = len(Path(out).parent.parts)
        if depth < len(bundle.parents):
            roots.append(bundle.parents[depth])
    for entry in recorded:
        if not isinstance(entry, str) or not entry:
            continue
        path = Path(entry)
        for candidate in [path] if path.is_absolute() else [root / path for root in roots]:
            if candidate.suffix.lower() in SUFFIXES and candidate.is_file():
                return candidate
    return None
