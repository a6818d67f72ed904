"""Golden files: every ``--json`` output and every written mask/bundle stays byte-for-byte the same.

The outputs below were recorded from the shipped ``sample_stats/`` before the
round-two restructuring. A refactor that changes a single byte of a JSON
contract (a key order, a float's last digit, a path) fails here. Time stamps and
the tool version are the only fields normalised, because they change by design.

To re-record after an *intended* change of output (and say so in the commit):
``LENS_RECORD_GOLDEN=1 python -m pytest tests/test_golden_outputs.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file

from lens_tui.cli import cli

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
RECORD = os.environ.get("LENS_RECORD_GOLDEN") == "1"
S = "sample_stats"

#: (golden name, lens arguments) for commands that print one JSON document.
JSON_COMMANDS: list[tuple[str, list[str]]] = [
    ("stats-news_en", ["stats", f"{S}/news_en.safetensors", "--json"]),
    ("stats-code-tau", ["stats", f"{S}/code_python.safetensors", "--tau", "0.005", "--json"]),
    (
        "compare-news-wiki-r8",
        ["compare", f"{S}/news_en.safetensors", f"{S}/wiki_en.safetensors", "--r", "8", "--json"],
    ),
    (
        "compare-en-zh-r3",
        [
            "compare",
            f"{S}/dialogue_en.safetensors",
            f"{S}/dialogue_zh.safetensors",
            "--r",
            "3",
            "--tau",
            "0.02",
            "--json",
        ],
    ),
    (
        "ablate-wiki-r8",
        ["ablate", f"{S}/wiki_en.safetensors", "--r", "8", "--step", "16", "--json"],
    ),
    (
        "ablate-mixed-seed",
        [
            "ablate",
            f"{S}/mixed.safetensors",
            "--r",
            "4",
            "--step",
            "8",
            "--max",
            "96",
            "--seed",
            "3",
            "--json",
        ],
    ),
    ("matrix-r8", ["matrix", S, "--r", "8", "--json"]),
    (
        "masks-compare-criteria",
        [
            "masks-compare",
            f"{S}/news_en.safetensors",
            f"{S}/code_python.safetensors",
            "--criteria",
            "mass,reap,frequency,coverage",
            "--r",
            "6",
            "--json",
        ],
    ),
    ("predict-vs-actual", ["predict-vs-actual", S, "--json"]),
    ("samples-wiki-r8", ["samples", f"{S}/wiki_en.safetensors", "--r", "8", "--json"]),
    (
        "design-three-targets-r8",
        [
            "design",
            "--candidates",
            *(f"{S}/{n}.safetensors" for n in ("wiki_en", "code_python", "dialogue_zh", "mixed")),
            "--targets",
            *(f"{S}/{n}.safetensors" for n in ("wiki_en", "code_python", "dialogue_zh")),
            "--r",
            "8",
            "--sequences",
            "64",
            "--json",
        ],
    ),
]

#: (golden name, lens arguments before --out) for commands that write a mask.
MASK_COMMANDS: list[tuple[str, list[str]]] = [
    ("mask-mass-r8", ["mask", f"{S}/news_en.safetensors", "--r", "8"]),
    ("mask-reap-budget", ["mask", f"{S}/wiki_en.safetensors", "-c", "reap", "--budget", "40"]),
    (
        "mask-coverage",
        [
            "mask",
            f"{S}/dialogue_en.safetensors",
            f"{S}/dialogue_ja.safetensors",
            "-c",
            "coverage",
            "--r",
            "7",
        ],
    ),
    (
        "mask-energy-groups",
        ["mask", f"{S}/code_python.safetensors", "-c", "energy", "--r", "8", "--groups", "4"],
    ),
]

_STAMP = re.compile(r'"(created_at|merged_at)": "[^"]*"')


def _normalise(text: str) -> str:
    text = _STAMP.sub(r'"\1": "<time>"', text)
    return text.replace('"tool_version": "' + _tool_version() + '"', '"tool_version": "<v>"')


def _tool_version() -> str:
    from core import __version__

    return __version__


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no golden file {path}; record with LENS_RECORD_GOLDEN=1"
    expected = path.read_text()
    assert text == expected, f"{name}: output differs from the golden file"


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "120")


@pytest.mark.parametrize(("name", "args"), JSON_COMMANDS, ids=[n for n, _ in JSON_COMMANDS])
def test_json_output_is_unchanged(name: str, args: list[str]) -> None:
    text = _run(args)
    json.loads(text)  # one JSON document
    _check(f"{name}.json", text)


@pytest.mark.parametrize(("name", "args"), MASK_COMMANDS, ids=[n for n, _ in MASK_COMMANDS])
def test_mask_file_is_unchanged(name: str, args: list[str], tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    _run([*args, "--out", str(out)])
    text = _normalise(out.read_text())
    _check(f"{name}.mask.json", text)


def test_merged_bundle_is_unchanged(tmp_path: Path) -> None:
    """Merging writes the same tensors (hashed bytes) and the same metadata keys and values."""
    out = tmp_path / "merged.safetensors"
    _run(
        [
            "merge",
            f"{S}/news_en.safetensors",
            f"{S}/dialogue_it.safetensors",
            "--out",
            str(out),
            "--dataset",
            "golden",
        ]
    )
    tensors = load_file(out)
    digest = {
        name: [
            str(array.dtype),
            list(array.shape),
            hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
        ]
        for name, array in sorted(tensors.items())
    }
    from safetensors import safe_open

    with safe_open(out, "np") as handle:
        meta = dict(handle.metadata())
    meta.pop("merged_at", None)
    meta["merged_from"] = "<paths>"
    text = json.dumps({"tensors": digest, "metadata": dict(sorted(meta.items()))}, indent=1) + "\n"
    _check("merge.json", text)
