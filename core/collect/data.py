"""Calibration samples from local files or a `datasets` name (docs/formats.md §Calibration data).

A sample's ``example_id`` is its 0-based position in the source: the index
among non-empty lines of a ``.txt`` file, the record index of a ``.jsonl`` /
``.json`` / ``.parquet`` file or a dataset split. Records whose text is empty
are not usable and are skipped, but they keep their position, so ids always
point back into the user's file.

Local files are read with the standard library (and pyarrow for parquet) so
that a bad file gives a precise one-line error (which line, which field);
dataset names go through ``datasets.load_dataset`` in streaming mode, so
``--num-samples 512`` of a huge corpus never downloads all of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import LensError

LOCAL_SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Sample:
    example_id: int
    text: str


def load_samples(
    data: str,
    *,
    text_field: str = "text",
    split: str = "train",
    dataset_config: str | None = None,
    num_samples: int | None = None,
) -> list[Sample]:
    """The first ``num_samples`` usable samples of ``data`` (all when ``None``).

    Raises :class:`LensError` for a missing, empty or unreadable source, a
    record without ``text_field``, or a source with no usable sample.
    """
    samples: list[Sample] = []
    for sample in iter_samples(data, text_field=text_field, split=split, config=dataset_config):
        samples.append(sample)
        if num_samples is not None and len(samples) >= num_samples:
            break
    if not samples:
        raise LensError(f"{data}: no usable samples (every text is empty)")
    return samples


def iter_samples(
    data: str, *, text_field: str = "text", split: str = "train", config: str | None = None
) -> Iterator[Sample]:
    path = Path(data)
    if path.is_dir():
        raise LensError(f"{data}: is a folder; give a .txt, .jsonl, .json or .parquet file")
    if path.exists():
        if path.stat().st_size == 0:
            raise LensError(f"{data}: empty file")
        readers = {
            ".txt": _iter_txt,
            ".jsonl": _iter_jsonl,
            ".json": _iter_json,
            ".parquet": _iter_parquet,
        }
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise LensError(
                f"{data}: unsupported data file type {path.suffix!r} "
                f"(use {', '.join(LOCAL_SUFFIXES)} or a `datasets` name)"
            )
        yield from reader(path, text_field)
        return
    if path.suffix.lower() in LOCAL_SUFFIXES or data.startswith((".", "/", "~")):
        raise LensError(f"{data}: no such file")
    yield from _iter_hub_dataset(data, text_field, split, config)


def _usable(example_id: int, text: object, where: str) -> Sample | None:
    if not isinstance(text, str):
        raise LensError(f"{where}: the text field holds {type(text).__name__}, not a string")
    return Sample(example_id, text) if text.strip() else None


def _iter_txt(path: Path, text_field: str) -> Iterator[Sample]:
    try:
        with path.open(encoding="utf-8") as handle:
            example_id = 0
            for line in handle:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield Sample(example_id, line)
                    example_id += 1
    except UnicodeDecodeError as exc:
        raise LensError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _record_text(record: object, text_field: str, where: str) -> object:
    if not isinstance(record, dict):
        if isinstance(record, str) and text_field == "text":
            return record  # a plain list of strings is a fine .json dataset
        raise LensError(f"{where}: expected an object with a {text_field!r} field")
    if text_field not in record:
        fields = ", ".join(sorted(map(str, record))[:8]) or "none"
        raise LensError(
            f"{where}: no field {text_field!r} (fields: {fields}); choose one with --text-field"
        )
    return record[text_field]


def _iter_jsonl(path: Path, text_field: str) -> Iterator[Sample]:
    example_id = 0
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LensError(f"{where}: not valid JSON ({exc.msg})") from None
                except (RecursionError, ValueError):  # nesting too deep; an int over 4,300 digits
                    raise LensError(
                        f"{where}: not usable JSON (nested too deep or a huge number)"
                    ) from None
                sample = _usable(example_id, _record_text(record, text_field, where), where)
                example_id += 1
                if sample is not None:
                    yield sample
    except UnicodeDecodeError as exc:
        raise LensError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _iter_json(path: Path, text_field: str) -> Iterator[Sample]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise LensError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise LensError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (RecursionError, ValueError):  # nesting too deep; an int over 4,300 digits
        raise LensError(f"{path}: not usable JSON (nested too deep or a huge number)") from None
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]
    if not isinstance(document, list):
        raise LensError(f"{path}: expected a JSON list of records (or {{'data': [...]}})")
    for index, record in enumerate(document):
        where = f"{path}: record {index}"
        sample = _usable(index, _record_text(record, text_field, where), where)
        if sample is not None:
            yield sample


def _iter_parquet(path: Path, text_field: str) -> Iterator[Sample]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise LensError(
            f"{path}: reading parquet needs pyarrow (pip install 'expert-calibration-lens[collect]')"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
        raise LensError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    columns = parquet.schema_arrow.names
    if text_field not in columns:
        raise LensError(
            f"{path}: no column {text_field!r} (columns: {', '.join(columns[:8])}); "
            "choose one with --text-field"
        )
    example_id = 0
    for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
        for text in batch.column(0).to_pylist():
            where = f"{path}: row {example_id}"
            sample = None if text is None else _usable(example_id, text, where)
            example_id += 1
            if sample is not None:
                yield sample


def _iter_hub_dataset(
    name: str, text_field: str, split: str, config: str | None
) -> Iterator[Sample]:
    """A `datasets` name, streamed (needs network access for hub datasets)."""
    try:
        import datasets
    except ImportError:
        raise LensError(
            f"{name}: not a local file, and loading a dataset by name needs the `datasets` "
            "package (pip install 'expert-calibration-lens[collect]')"
        ) from None
    label = name + (f" ({config})" if config else "") + f" split {split!r}"
    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True)
    except Exception as exc:  # network, unknown name, bad config: all user-fixable
        raise LensError(
            f"{name}: not a local file, and loading it as a `datasets` name failed: "
            f"{_first_line(exc)}"
        ) from None
    try:
        for index, record in enumerate(stream):
            where = f"{label}: record {index}"
            sample = _usable(index, _record_text(record, text_field, where), where)
            if sample is not None:
                yield sample
    except LensError:
        raise
    except Exception as exc:
        raise LensError(f"{label}: reading failed: {_first_line(exc)}") from None


def samples_digest(samples: list[Sample]) -> str:
    """A content hash of the selected samples: a resumed run must see the same data."""
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(f"{sample.example_id}\0{len(sample.text)}\0".encode())
        digest.update(sample.text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
