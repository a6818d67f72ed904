"""Value checks of a bundle's statistics: impossible numbers are refused on load, not reported.

A NaN layer would report JS 0.0 and an all-zero one N_eff 1e12: plausible
numbers from an impossible file. These checks refuse such a bundle with one
:class:`~core.errors.BundleError` line naming the file, the tensor and the
first bad index. What must hold (docs/formats.md §Reading and writing):

- every float statistic is finite and ≥ 0 (they are sums of probabilities,
  weights, norms and their squares);
- ``token_count`` ≥ 0, and its sum fits int64;
- ``example_ids`` ≥ 0 (positions in the source data; repeats are allowed:
  a merged bundle may hold several datasets);
- for every sample n and layer l, Σ_e ``prob_sum[n, l, e]`` = ``token_count[n]``
  (each counted token adds one softmax over E experts, which sums to 1) within
  :func:`row_tolerance`, so an all-zero layer of a sample with tokens is refused;
- when ``top_k`` > 0, Σ_e ``topk_count[n, l, e]`` = top_k · ``token_count[n]``
  exactly (each counted token picks top_k distinct experts).

Speed: the tensors are memory-mapped and read once, in blocks of samples
that stay in cache, by the one pass of :mod:`core.sample_sums` that also forms
what every reader needs first: the sums over samples (the numerator of the
signature P_l(S)) and, for ``prob_sum`` and ``energy_sum``, the sums of the
resampling units of ``--ci``. The checks are that pass's ``visit``, run on
each block right after its sum brought it into cache: per block one integer
max of the float bits (a set sign bit or an all-ones exponent means negative,
NaN or Inf) and one BLAS matrix-vector product (the row sums, compared with
``token_count`` once at the end through each sample's smallest and largest
row). Only when a check fails does the slow exact search for the first bad
index run. Never a full copy of a tensor. Issue 14's target: load + compare
within 1.5× of reading and summing ``prob_sum`` alone
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core.errors import BundleError
from core.sample_sums import BlockedSums, block_samples, blocked_sums

#: Unit roundoff of float32 (2^-24).
U32 = 2.0**-24
#: Relative error of a probability stored as bfloat16 (8 significant bits): raw
#: per-token shards keep probabilities in bfloat16, so a bundle rebuilt from them
#: (``lens index``) has rows off by up to this fraction of their tokens.
BF16_REL = 2.0**-8
#: float32 bit patterns at or above this (as uint32) are negative (sign bit),
#: NaN or ±Inf (exponent all ones): 0x7F800000 is +Inf.
_FIRST_BAD_BITS = np.uint32(0x7F800000)

#: The BLAS row sums take at most this many bytes per call: OpenBLAS splits a
#: larger matrix-vector product over threads, which on a loaded machine spin
#: and cost more CPU time than the product itself.
_ROW_SUM_BYTES = 1 << 19

FLOAT_STATISTICS = (
    "prob_sum",
    "energy_sum",
    "weight_sum",
    "act_norm_sum",
    "act_sqnorm_sum",
    "reap_sum",
)


def row_tolerance(tokens: np.ndarray, num_experts: int) -> np.ndarray:
    """How far Σ_e prob_sum[n, l, e] may sound-ly lie from ``tokens[n]`` (per sample).

    The row is the float32 sum over T tokens (in any order: the worst case is
    sequential, relative error ≤ (T − 1)·u) of softmaxes whose E terms sum to
    1 within (E + 3)·u (exp, the float32 normaliser, the division), each term
    possibly rounded to bfloat16 on the way (relative 2^-8, raw shards), and
    our own float32 row sum over E adds ≤ E·u. So
    |row − T| ≤ T · (2^-8 + (T + 2E + 8)·u); a damaged file (a scaled layer, a
    wrong token count, a zeroed layer) is off by far more.
    """
    t = tokens.astype(np.float64)
    return t * (BF16_REL + (t + 2 * num_experts + 8) * U32)


#: Statistics whose resampling-unit sums the pass keeps (the two signatures).
UNIT_STATISTICS = ("prob_sum", "energy_sum")


def check_values(
    path: Path, tensors: Mapping[str, np.ndarray], top_k: int, *, unit_sums: bool = True
) -> dict[str, BlockedSums]:
    """Refuse impossible statistics (see the module docstring); raises :class:`BundleError`.

    Returns the :func:`~core.sample_sums.blocked_sums` of every float
    statistic it checked (unit sums only for :data:`UNIT_STATISTICS`, and only
    with ``unit_sums``), formed in the same pass over the data.
    """
    token_count = np.asarray(tensors["token_count"])
    _check_counts(path, token_count, "token_count")
    _check_counts(path, np.asarray(tensors["example_ids"]), "example_ids")
    limit = np.iinfo(np.int64).max
    overflows = token_count.size and int(token_count.max()) > limit // token_count.size
    if overflows and sum(int(t) for t in token_count) > limit:  # exact; only for absurd counts
        raise BundleError(f"{path}: 'token_count' sums past what int64 holds (corrupt counts)")
    if int(token_count.sum()) == 0:
        raise BundleError(f"{path}: bundle holds zero tokens (every sample has token_count 0)")
    prob_sum = tensors["prob_sum"]
    tolerance = row_tolerance(token_count, prob_sum.shape[2])
    totals: dict[str, BlockedSums] = {}
    with np.errstate(over="ignore", invalid="ignore"):  # huge rows overflow to inf: refused
        for name in FLOAT_STATISTICS:
            if name in tensors:
                totals[name] = _check_floats(
                    path,
                    name,
                    tensors[name],
                    token_count,
                    tolerance,
                    rows_sum_to_tokens=name == "prob_sum",
                    keep_units=unit_sums and name in UNIT_STATISTICS,
                )
    if "topk_count" in tensors:
        _check_topk(path, tensors["topk_count"], token_count, top_k)
    return totals


def _check_counts(path: Path, values: np.ndarray, name: str) -> None:
    if values.size and values.min() < 0:
        first = int(np.flatnonzero(values < 0)[0])
        raise BundleError(f"{path}: {name!r} is negative at index {first} ({values[first]})")


def _check_floats(
    path: Path,
    name: str,
    array: np.ndarray,
    token_count: np.ndarray,
    tolerance: np.ndarray,
    *,
    rows_sum_to_tokens: bool,
    keep_units: bool,
) -> BlockedSums:
    """Finite and ≥ 0 everywhere; with ``rows_sum_to_tokens``, Σ_e = token_count per (n, l).

    Runs as the ``visit`` of :func:`~core.sample_sums.blocked_sums`, so the
    statistic is read from memory once: the block's sum brings it into cache,
    the bits max and the BLAS row sums find it there. The row sums are
    compared with ``token_count`` once at the end (few calls per block).
    """
    n, num_layers, num_experts = array.shape
    ones = np.ones(num_experts, dtype=np.float32)
    row_sums = np.empty((n * num_layers,), dtype=np.float32) if rows_sum_to_tokens else None

    rows_per_call = max(1, _ROW_SUM_BYTES // (num_experts * array.dtype.itemsize))

    def visit(start: int, block: np.ndarray) -> None:
        if block.view(np.uint32).max(initial=0) >= _FIRST_BAD_BITS:
            _raise_first_bad_float(path, name, block, start)
        if row_sums is not None:  # [b·L] float32, BLAS
            rows = block.reshape(-1, num_experts)
            out = row_sums[start * num_layers : (start + len(block)) * num_layers]
            for first in range(0, len(rows), rows_per_call):
                np.matmul(
                    rows[first : first + rows_per_call],
                    ones,
                    out=out[first : first + rows_per_call],
                )

    sums = blocked_sums(array, visit=visit, keep_groups=keep_units)
    if row_sums is not None:
        _check_row_sums(path, row_sums.reshape(n, num_layers), token_count, tolerance)
    return sums


def _check_row_sums(
    path: Path, rows: np.ndarray, token_count: np.ndarray, tolerance: np.ndarray
) -> None:
    """Σ_e prob_sum[n, l, e] = token_count[n] within ``tolerance[n]``; names the first bad row.

    Every row of a sample lies within its bound iff its smallest and largest
    row do, so two float32 reductions over ``[N, L]`` decide; the exact search
    runs only when one fails. (NaN rows never get here: the bits refused them.)
    """
    low, high = rows.min(axis=1), rows.max(axis=1)
    if ((token_count - low) <= tolerance).all() and ((high - token_count) <= tolerance).all():
        return
    off = np.abs(rows - token_count[:, None]) > tolerance[:, None]
    s, layer = (int(i) for i in np.argwhere(off)[0])
    raise BundleError(
        f"{path}: 'prob_sum' row [{s}, {layer}] sums to {float(rows[s, layer]):.6g} "
        f"over the experts but token_count[{s}] is {int(token_count[s])} "
        "(each token's routing probabilities sum to 1)"
    )


def _raise_first_bad_float(path: Path, name: str, block: np.ndarray, start: int) -> None:
    """The exact search, run only for a block whose bits flagged a problem."""
    bad = ~np.isfinite(block) | (block < 0)
    if not bad.any():
        return  # only -0.0, which is zero
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = float(block[index])
    what = "NaN" if np.isnan(value) else "infinite" if np.isinf(value) else "negative"
    where = ", ".join(str(i) for i in (start + index[0], *index[1:]))
    raise BundleError(f"{path}: {name!r} is {what} at [{where}] ({value:g})")


def _check_topk(path: Path, counts: np.ndarray, token_count: np.ndarray, top_k: int) -> None:
    """Counts ≥ 0; with a known top_k, each row counts exactly top_k picks per token."""
    step = block_samples(counts)
    for start in range(0, len(counts), step):
        block = np.asarray(counts[start : start + step])
        if block.size and block.min() < 0:
            index = tuple(int(i) for i in np.argwhere(block < 0)[0])
            where = ", ".join(str(i) for i in (start + index[0], *index[1:]))
            raise BundleError(f"{path}: 'topk_count' is negative at [{where}]")
        if top_k > 0:
            rows = block.sum(axis=2, dtype=np.int64)
            want = top_k * token_count[start : start + step, None]
            off = rows != want
            if off.any():
                s, layer = (int(i) for i in np.argwhere(off)[0])
                raise BundleError(
                    f"{path}: 'topk_count' row [{start + s}, {layer}] counts {int(rows[s, layer])} "
                    f"picks but top_k × token_count[{start + s}] is {int(want[s, 0])}"
                )
