"""``e``: write what the current view shows to a JSON file, as the CLI's ``--json`` would.

Each view keeps the engine result it draws (``comparison``, ``result``,
``report``); its ``to_json()`` is the same document ``lens compare / ablate /
matrix / predict-vs-actual --json`` prints, so an export can be read by the
same scripts. The file goes to the current directory under a new name
(``lens-compare-c4-vs-zh-r8.json``, then ``…-2.json``), is written atomically,
and is never one of the loaded bundles or results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.errors import LensError
from core.io.atomic import atomic_write_text
from core.io.outputs import check_output

#: The attribute each view keeps its engine result in.
RESULT_ATTRIBUTES = ("comparison", "result", "report")


def view_document(view: object) -> dict | None:
    """The JSON document of what ``view`` shows, or ``None`` when it shows no result."""
    for name in RESULT_ATTRIBUTES:
        result = getattr(view, name, None)
        if result is not None and hasattr(result, "to_json"):
            return result.to_json()
    return None


def export_name(view_id: str, parts: list[str]) -> str:
    """``lens-compare-c4-vs-zh-r8``: the view and the selection, safe as a file name."""
    stem = "-".join(["lens", view_id, *parts])
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", stem)


def free_path(folder: Path, stem: str) -> Path:
    """``folder/stem.json``, or ``stem-2.json``, ``stem-3.json``…: never an existing file."""
    path = folder / f"{stem}.json"
    number = 2
    while path.exists():
        path = folder / f"{stem}-{number}.json"
        number += 1
    return path


def export_view(
    view: object, view_id: str, parts: list[str], inputs: list[Path], folder: Path
) -> Path:
    """Write the view's document to a new file in ``folder``; a LensError if there is none."""
    document = view_document(view)
    if document is None:
        raise LensError(f"the {view_id} view shows no result to export")
    path = free_path(folder, export_name(view_id, parts))
    check_output(path, inputs, option="export")
    atomic_write_text(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return path
