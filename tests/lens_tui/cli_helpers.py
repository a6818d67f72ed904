"""Run ``lens`` as a user does (a real subprocess) and check its error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lens(*args: object, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lens_tui", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "120",
            "HF_HUB_OFFLINE": "1",
        },
        timeout=timeout,
    )


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, no traceback, exactly one line on stderr holding every needle."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
