"""The API docs list exactly each documented dataclass's fields, in order.

A dataclass is documented under a heading ``### `Name``` followed by a table
whose first column holds the field names; the test reads every such table in
``docs/dev/*.md`` and compares it with ``dataclasses.fields`` of the class.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from core.collect.config import CollectConfig, CollectProgress
from core.evaluate.runner import EvaluateConfig
from core.families.base import FamilyAdapter, PruneSpec
from core.model.options import ModelOptions

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dev"

#: Every dataclass whose fields a doc must list, and the doc that lists it.
DOCUMENTED = {
    ModelOptions: "collect-api.md",
    CollectConfig: "collect-api.md",
    CollectProgress: "collect-api.md",
    FamilyAdapter: "collect-api.md",
    PruneSpec: "collect-api.md",
    EvaluateConfig: "evaluate-api.md",
}


def documented_fields(text: str, name: str) -> list[str] | None:
    """The first-column names of the table under ``### `name``` (``None`` if absent)."""
    match = re.search(rf"^### `{re.escape(name)}`\s*$", text, flags=re.M)
    if match is None:
        return None
    rows = []
    for line in text[match.end() :].lstrip("\n").splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    names = [row.split("|")[1].strip().strip("`") for row in rows[2:]]  # skip header, rule
    return names


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda c: c.__name__)
def test_doc_lists_the_dataclass_fields_in_order(cls):
    text = (DOCS / DOCUMENTED[cls]).read_text(encoding="utf-8")
    listed = documented_fields(text, cls.__name__)
    assert listed is not None, f"{DOCUMENTED[cls]} has no '### `{cls.__name__}`' table"
    assert listed == [f.name for f in fields(cls)], f"{DOCUMENTED[cls]}: {cls.__name__} drifted"


def test_the_parser_sees_a_missing_or_extra_field():
    table = "### `X`\n\n| field | type |\n|---|---|\n| `a` | int |\n| `b` | str |\n\nafter\n"
    assert documented_fields(table, "X") == ["a", "b"]
    assert documented_fields(table, "Y") is None
