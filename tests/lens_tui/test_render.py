"""The analysis commands' human tables at 80 columns and through a pipe: whole numbers only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lens_tui.render import matrix_column_chunks

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_stats"


def lens_piped(*args: str, columns: int | None) -> str:
    """Run ``lens`` with its stdout a pipe (as ``| less`` or a log would), at ``columns``."""
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    out = subprocess.run(
        [sys.executable, "-m", "lens_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize("columns", [80, None])  # None: a pipe with no COLUMNS (rich says 80)
def test_matrix_tables_print_every_number_whole_at_80_columns(columns):
    doc = json.loads(lens_piped("matrix", str(SAMPLES), "--r", "8", "--json", columns=columns))
    text = lens_piped("matrix", str(SAMPLES), "--r", "8", columns=columns)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "0.…" not in text
    names = doc["names"]
    for i, name in enumerate(names):  # every row label, numbered like the columns
        assert any(line.lstrip().startswith(f"#{i + 1} {name[:12]}") for line in lines)
    # Every JS value, formatted independently of render.fmt, appears in its row.
    for i, row in enumerate(doc["js_divergence"]):
        label = f"#{i + 1} "
        shown = " ".join(
            line for line in lines if line.lstrip().startswith(label) and "%" not in line
        )
        for value in row:
            assert f"{value:.4f}" in shown, (i, value)


def test_column_chunks_cover_every_column_once_and_fit():
    chunks = matrix_column_chunks(12, 80, 6)
    assert [j for chunk in chunks for j in chunk] == list(range(12))
    assert all(20 + 3 + len(chunk) * (6 + 3) <= 80 for chunk in chunks)
    assert matrix_column_chunks(12, 200, 6) == [range(0, 12)]
