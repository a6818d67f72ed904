"""The one strict JSON reader for the tool's own files (masks, evaluations, run.json, headers).

Python's ``json`` accepts things these formats never hold and fails in ways
that are not :class:`~core.errors.LensError`:

- ``NaN``, ``Infinity`` and ``-Infinity`` literals parse to floats that then
  flow into statistics as silently wrong numbers: refused.
- Duplicate keys keep the last value silently, so a file can say two things
  and mean the one a reader did not look at: refused.
- Deep nesting (``[[[[...]]]]``) raises ``RecursionError``, and integers over
  4,300 digits raise ``ValueError`` (Python's int-parsing limit): both become
  one line.
- Invalid UTF-8 raises ``UnicodeDecodeError``, which has no ``.msg``.

Bools are still bools here (``True`` is an ``int`` in Python): the format
readers check types with :func:`is_int` / :func:`is_number`, which exclude them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from core.errors import LensError

#: Nesting deeper than this is refused before parsing: none of our formats nests
#: more than 5 levels, and a deep document would exhaust the parser's recursion.
MAX_DEPTH = 64


class _Refused(ValueError):
    """Raised inside the parser hooks; turned into one line by :func:`parse_json`."""


def _no_constant(name: str) -> float:
    raise _Refused(f"{name} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    doc: dict = {}
    for key, value in pairs:
        if key in doc:
            raise _Refused(f"key {key!r} appears twice in one object")
        doc[key] = value
    return doc


def _depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (a linear scan, no parse)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json(text: str | bytes, where: str) -> object:
    """Parse ``text`` strictly; every problem is one :class:`LensError` line starting ``where:``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LensError(f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if _depth_exceeds(text, MAX_DEPTH):
        raise LensError(f"{where}: not valid JSON (nested deeper than {MAX_DEPTH} levels)")
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except _Refused as exc:
        raise LensError(f"{where}: not valid JSON ({exc})") from None
    except json.JSONDecodeError as exc:
        raise LensError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # int digit limit; nesting the scan missed
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise LensError(f"{where}: not valid JSON ({reason})") from None


def read_json(path: str | os.PathLike[str], *, max_bytes: int = 256 * 1024 * 1024) -> object:
    """Read and strictly parse a JSON file; problems (missing, unreadable, too big) name the file."""
    path = Path(path)
    try:
        if path.is_dir():
            raise LensError(f"{path}: is a folder, not a JSON file")
        size = path.stat().st_size
        if size > max_bytes:
            raise LensError(f"{path}: {size:,} bytes is too big for a JSON file of this tool")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LensError(f"{path}: no such file") from None
    except OSError as exc:
        raise LensError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    return parse_json(raw, str(path))


def is_int(value: object) -> bool:
    """A JSON integer (``True``/``False`` are ints in Python but not here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite JSON number that is not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too big for a float
        return False


def short_repr(value: object) -> str:
    """``repr`` of a value from a file, cut so a huge one cannot flood the one error line."""
    if is_int(value) and abs(value) >= 10**30:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_format(path: str | os.PathLike[str]) -> object:
    """The ``format`` key of a JSON file, or None for anything unreadable or malformed.

    For telling our files apart (mask, evaluation) before reading one properly,
    e.g. among the ``*.json`` of a browsed folder, without ever raising.
    """
    try:
        doc = read_json(path)
    except LensError:
        return None
    return doc.get("format") if isinstance(doc, dict) else None
