"""The README's family tables are exactly what the adapters generate.

Regenerate with ``python scripts/family_tables.py --write``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.families import ADAPTERS
from core.families.tables import KINDS, markdown_table, marked_table, replace_tables

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.parametrize("kind", KINDS)
def test_readme_table_matches_the_adapters(kind):
    text = README.read_text(encoding="utf-8")
    assert marked_table(text, kind) == markdown_table(kind), (
        f"README's {kind} family table is stale: run python scripts/family_tables.py --write"
    )


def test_tables_list_one_row_per_adapter_that_supports_the_tool():
    rows = {kind: markdown_table(kind).splitlines()[2:] for kind in KINDS}
    assert len(rows["collect"]) == len(ADAPTERS)
    assert [r.split(" | ")[0][2:] for r in rows["prune"]] == [
        a.label for a in ADAPTERS if a.prune is not None
    ]
    assert len(rows["evaluate"]) == sum(a.masks_in_memory for a in ADAPTERS)


def test_a_stale_table_is_detected_and_regenerated():
    text = README.read_text(encoding="utf-8")
    stale = text.replace("| GPT-OSS | top-k of the logits", "| GPT-OSS | softmax of the logits")
    assert stale != text
    assert marked_table(stale, "evaluate") != markdown_table("evaluate")
    assert replace_tables(stale) == text
