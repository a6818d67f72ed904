"""What the app remembers between runs: datasets A and B, r, τ and the view.

Kept in the user's state directory (``$XDG_STATE_HOME/expert-calibration-lens``,
by default ``~/.local/state/expert-calibration-lens``) as one small JSON file,
written atomically when the app quits. Bundles are remembered by path, so a
remembered A or B applies only when that same file is loaded again; anything
that no longer fits (a missing bundle, an r beyond E, an unknown view) is
ignored rather than reported: the file is a convenience, never an input.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from core.io.atomic import atomic_write_text

APP_DIR = "expert-calibration-lens"
FILE_NAME = "state.json"


def state_path() -> Path:
    """``$XDG_STATE_HOME/expert-calibration-lens/state.json`` (XDG's default when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP_DIR / FILE_NAME


@dataclass(frozen=True)
class SavedState:
    """The remembered settings; bundle paths are absolute."""

    a: str | None = None
    b: str | None = None
    r: int | None = None
    tau: float | None = None
    view: str | None = None


def load_state(path: Path | None = None) -> SavedState:
    """The saved state, or an empty one when there is none or it cannot be read."""
    path = state_path() if path is None else path
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return SavedState()
    if not isinstance(doc, dict):
        return SavedState()
    return SavedState(
        a=doc.get("a") if isinstance(doc.get("a"), str) else None,
        b=doc.get("b") if isinstance(doc.get("b"), str) else None,
        r=doc.get("r") if isinstance(doc.get("r"), int) else None,
        tau=float(doc["tau"]) if isinstance(doc.get("tau"), (int, float)) else None,
        view=doc.get("view") if isinstance(doc.get("view"), str) else None,
    )


def save_state(state: SavedState, path: Path | None = None) -> None:
    """Write ``state`` atomically; a state directory that cannot be written is not an error."""
    path = state_path() if path is None else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(state), indent=2) + "\n")
    except OSError:
        pass  # a read-only home must not stop the app from quitting
