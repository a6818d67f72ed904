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
from typing import Any

import numpy as np

from core.errors import BundleError

#: The tensors a bundle may hold, by kind: float sums or integer counts/ids.
TENSOR_KINDS = {
    "prob_sum": "float",
    "energy_sum": "float",
    "weight_sum": "float",
    "act_norm_sum": "float",
    "act_sqnorm_sum": "float",
    "reap_sum": "float",
    "token_count": "int",
    "example_ids": "int",
    "topk_count": "int",
}


def _to_numpy(torch: Any, path: Path, key: str, value: object) -> np.ndarray:
    """One known tensor as numpy, converted only where that is lossless; else one line.

    bfloat16 and float16 widen to float32 exactly (numpy has no bfloat16);
    integer counts stored as floats are accepted only when every value is a
    whole number. Sparse, quantized, complex and boolean tensors, and anything
    that is not a tensor (a nested dict, a list), are refused.
    """
    if not isinstance(value, torch.Tensor):
        raise BundleError(
            f"{path}: {key!r} is a {type(value).__name__}, not a tensor "
            "(a .pt bundle is a flat dict of tensors)"
        )
    if value.layout != torch.strided or value.is_quantized:
        raise BundleError(f"{path}: {key!r} is a {value.layout} tensor; save it dense")
    dtype = value.dtype
    if dtype.is_complex or dtype == torch.bool:
        raise BundleError(f"{path}: {key!r} has dtype {dtype}, which a bundle cannot hold")
    if dtype in (torch.bfloat16, torch.float16):
        value = value.to(torch.float32)  # exact: every bf16/fp16 value is a float32 value
    try:
        array = value.detach().cpu().resolve_conj().resolve_neg().contiguous().numpy()
    except (RuntimeError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise BundleError(f"{path}: {key!r} cannot be read as an array ({reason})") from None
    if array.dtype.kind not in "fiu":
        raise BundleError(f"{path}: {key!r} has dtype {array.dtype}, which a bundle cannot hold")
    if TENSOR_KINDS[key] == "float" and array.dtype.kind != "f":
        raise BundleError(f"{path}: {key!r} has dtype {dtype}, expected a floating-point sum")
    if TENSOR_KINDS[key] == "int" and array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array)) & (np.abs(array) < 2.0**53)
        if not whole.all():
            first = int(np.flatnonzero(~whole.reshape(-1))[0])
            raise BundleError(
                f"{path}: {key!r} holds a non-integer value at flat index {first} "
                f"({array.reshape(-1)[first]!r})"
            )
        array = array.astype(np.int64)
    return array


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
        if key in TENSOR_KINDS:
            tensors[key] = _to_numpy(torch, path, key, value)
        elif isinstance(value, torch.Tensor):
            continue  # a tensor the bundle format does not know: not ours to interpret
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
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
