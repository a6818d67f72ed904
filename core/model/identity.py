"""A comparable name for a model, so a mask made for it is recognised under another path.

Evaluation and pruning both refuse a mask made for another model; a local
folder, a hub id and a hub cache path of the same model must compare equal.
"""

from __future__ import annotations


def model_identity(name: str) -> str:
    """A comparable model name: the last path part, or ``name`` of a hub cache ``models--org--name``."""
    parts = [p for p in str(name).replace("\\", "/").split("/") if p]
    for part in reversed(parts):
        if part.startswith("models--"):
            return part.split("--")[-1].lower()
    return parts[-1].lower() if parts else ""
