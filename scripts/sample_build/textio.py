"""Logging and the JSON-lines text files every stage reads and writes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def log(msg: str) -> None:
    print(f"[build_sample_stats] {msg}", file=sys.stderr, flush=True)


def write_jsonl(path: Path, texts: Iterable[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def collect_progress(name: str, busy: str = "collecting") -> Callable:
    """Log progress: every stage change, and every 20 s while ``busy``."""
    last = [0.0]

    def report(p) -> None:
        if p.stage != busy or time.time() - last[0] >= 20:
            last[0] = time.time()
            log(f"{name}: {p.stage} {p.samples_done}/{p.samples_total} samples")

    return report
