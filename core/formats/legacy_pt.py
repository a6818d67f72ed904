"""The paper's ``derived_stats.pt``: a dict of tensors, read weights-only.

``torch.load(weights_only=True)`` only: a file that needs full unpickling is
refused and none of its code runs. This module turns the paper's layout into
numpy arrays and string metadata (``token_count`` flattened, ``example_ids``
defaulted to ``0..N-1``, the dataset named after the folder);
:mod:`core.formats.bundle` then casts them to the bundle's dtypes and validates
them like any bundle.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from core.errors import BundleError


def read_legacy_pt(
    path: Path, stamp: dict[str, str]
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Scalar entries (as strings) and tensors (as numpy) of a ``derived_stats.pt``.

    ``stamp`` (the bundle format's name and version) is written into the
    metadata where the file's own keys would be, so a file that claims another
    format is read as the bundle format.
    """
    # torch is imported here, not at module level: it is an optional dependency (the
    # `collect` extra) and browsing bundles must work without it; only a .pt needs it.
    try:
        import torch
    except ImportError:
        raise BundleError(
            f"{path}: reading .pt bundles needs torch (pip install 'expert-calibration-lens[collect]')"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise BundleError(
            f"{path}: refused: not loadable with weights_only=True ({first[:120]}); "
            "only plain tensor dicts are accepted"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors...
        raise BundleError(f"{path}: not a readable torch file ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or "prob_sum" not in obj:
        raise BundleError(f"{path}: a .pt bundle must be a dict holding at least 'prob_sum'")
    tensors: dict[str, np.ndarray] = {}
    metadata: dict[str, str] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().numpy()
        elif isinstance(value, (str, int, float)):
            metadata[str(key)] = str(value)
    prob_sum = tensors.get("prob_sum")
    if prob_sum is None or prob_sum.ndim != 3:
        raise BundleError(f"{path}: 'prob_sum' must be a [N, L, E] tensor")
    n, num_layers, num_experts = prob_sum.shape
    if "token_count" not in tensors:
        raise BundleError(f"{path}: missing tensor 'token_count'")
    tensors["token_count"] = tensors["token_count"].reshape(-1)
    ids = tensors.get("example_ids")
    tensors["example_ids"] = np.arange(n, dtype=np.int64) if ids is None else ids.reshape(-1)
    metadata.setdefault("model", "unknown")
    metadata.setdefault("dataset", path.parent.name or path.stem)
    metadata.update(
        **stamp,
        num_layers=str(num_layers),
        num_experts=str(num_experts),
        source_format="derived_stats.pt",
    )
    metadata.setdefault("top_k", "0")
    return metadata, tensors
