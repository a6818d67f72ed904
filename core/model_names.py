"""When two model names mean the same model.

Bundles, masks and evaluations record the model as the user named it: a hub
id (``openai/gpt-oss-20b``), a local folder (``/data/GPT-OSS-20B/``) or a hub
cache path (``…/models--openai--gpt-oss-20b/snapshots/…``). Comparing those
strings exactly would refuse the same model under two spellings; comparing
only layer and expert counts would accept two different models of one shape.
:func:`model_identity` is the one comparison every command uses.
"""

from __future__ import annotations


def model_identity(name: str) -> str:
    """A comparable model name: the last path part, or ``name`` of a hub cache ``models--org--name``."""
    parts = [p for p in str(name).replace("\\", "/").split("/") if p]
    for part in reversed(parts):
        if part.startswith("models--"):
            return part.split("--")[-1].lower()
    return parts[-1].lower() if parts else ""
