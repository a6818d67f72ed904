"""Sums over samples: the one blocked pass that reads a ``[N, L, E]`` statistic.

Every reader of a bundle first needs Σ_n of its statistics (the numerator of
the signature P_l(S)), and ``--ci`` needs the sums of its resampling units
(blocks of consecutive sequences, :mod:`core.uncertainty`). Reading a 350 MB
tensor costs more than anything done to a block once it is in cache, so one
pass (:func:`blocked_sums`) forms both and lets the value checks on load look
at each block on the way (issues 14 and 15). The order of the sums is defined
here and only here:

- the samples fall into units (:func:`unit_bounds`): each sample when a bundle
  has at most :data:`MAX_UNITS`, else :data:`MAX_UNITS` runs of consecutive
  samples whose sizes differ by at most one;
- single-sample units: blocks of :func:`block_samples` samples are each
  reduced in float64 (numpy adds the rows one after another) and the block
  sums are added in order; such a bundle that fits one block (the shipped
  ``sample_stats/``) is summed exactly as ``np.add.reduce(x, axis=0,
  dtype=float64)``;
- larger units: each unit is reduced in float32, rows added one after
  another, in runs of at most :func:`run_samples` samples (a unit longer than
  that: its runs' float32 sums added in float64, in order); the unit sums are
  added in float64, in order, and kept as float32 for the bootstrap (if a
  float32 run overflows, values near the float32 maximum, the tensor is summed
  again with float64 runs: no finite input gives an infinite sum).

Why float32 inside a run: the float64 reduce of a float32 block goes through
numpy's casting buffers and costs about 4× the float32 reduce of the same
block in cache; at N = 20,000 (L = 36, E = 128) it made loading with the
value checks cost 1.8–2.1× the read-and-sum floor's CPU time, float32 runs
1.46–1.70× (a loaded 2-core machine; benchmarks/RESULTS.md, "Value checks on
load: one pass, float32 runs"). A run of r ≤ 32 float32
terms (all ≥ 0: the checks refuse negatives) is off by at most (r − 1)·2^-24
≈ 1.8e-6 of its sum, below the precision of the statistics themselves (each
entry is a float32 sum over its sample's tokens, off by up to T·2^-24), and the
float64 sum over the N/r runs adds ~(N/r)·2^-53. Above :data:`MAX_UNITS`
sequences a bundle is large, so those are the bundles that need the speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Samples are read in blocks of about this many bytes (28 samples at L = 36,
#: E = 128): a block and its float64 sum stay in a core's cache.
SUM_BLOCK_BYTES = 1 << 19
#: Above this many sequences, a bundle is resampled in this many blocks of
#: consecutive sequences instead of sequence by sequence (docs/uncertainty.md).
MAX_UNITS = 1000
#: At most this many samples are added in float32 before the sum goes to
#: float64 (units larger than one sample; see the module docstring).
FLOAT32_RUN = 32

#: Called with (first sample index, block) for every block the pass reads.
Visit = Callable[[int, np.ndarray], None]


def block_samples(array: np.ndarray) -> int:
    """Samples per block of ``array`` (``[N, ...]``): about :data:`SUM_BLOCK_BYTES`."""
    per_sample = max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize)
    return max(1, SUM_BLOCK_BYTES // per_sample)


def run_samples(array: np.ndarray) -> int:
    """Samples per float32 run of a unit: :data:`FLOAT32_RUN`, or fewer to fit a block."""
    return min(block_samples(array), FLOAT32_RUN)


def group_bounds(n: int, groups: int) -> np.ndarray:
    """Start offsets of ``groups`` consecutive groups of ``n`` items, sizes m+1 first, then m."""
    m, extra = divmod(n, groups)
    sizes = np.full(groups, m, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def unit_bounds(n: int) -> np.ndarray:
    """The resampling units of a bundle of ``n`` samples, as start offsets plus ``n``."""
    return group_bounds(n, min(n, MAX_UNITS))


@dataclass(frozen=True)
class BlockedSums:
    """What one pass forms: ``total`` ``[L, E]`` float64 and ``groups`` ``[G, L·E]`` float32.

    ``groups`` is ``None`` when the groups are single samples (the data are
    their own sums) or when they were not asked for.
    """

    total: np.ndarray
    groups: np.ndarray | None


def blocked_sums(
    array: np.ndarray,
    bounds: np.ndarray | None = None,
    visit: Visit | None = None,
    keep_groups: bool = True,
) -> BlockedSums:
    """Σ_n of ``array`` and the sums of its groups ``bounds`` (default :func:`unit_bounds`).

    ``visit`` sees every block right after its sum, while it is still in cache
    (the value checks; a visit that raises ends the pass). The
    total's order depends on the groups, so the default units give the
    engine's one order; other bounds (tests of other unit counts) only serve
    their group sums.
    """
    array = np.asarray(array)  # a plain view of a mapping: slicing a memmap costs more
    n = array.shape[0]
    bounds = unit_bounds(n) if bounds is None else np.asarray(bounds)
    step = block_samples(array)
    total = np.zeros(array.shape[1:], dtype=np.float64)
    part = np.empty_like(total)
    if n == 0:
        return BlockedSums(total, None)
    if int(np.diff(bounds).max()) == 1:  # single samples: blocks of `step` samples
        for start in range(0, n, step):
            block = array[start : start + step]
            _add_block(total, part, block, first=start == 0)
            if visit is not None:
                visit(start, block)
        return BlockedSums(total, None)
    groups = np.empty((len(bounds) - 1, total.size), dtype=np.float32) if keep_groups else None
    # float32 runs for the float32 statistics (float64 for wider input).
    run_dtype = np.result_type(array.dtype, np.float32)
    _unit_sums(array, bounds, run_samples(array), run_dtype, visit, total, groups)
    if run_dtype == np.float32 and not np.isfinite(total).all():
        # Finite values so large that a float32 run overflowed (float64 cannot, for
        # float32 terms), or NaN/Inf in data no visit checked: the same order in
        # float64, so that no value that passed the checks gives an infinite sum.
        total[...] = 0
        _unit_sums(array, bounds, run_samples(array), np.dtype(np.float64), None, total, groups)
    return BlockedSums(total, groups)


def _unit_sums(
    array: np.ndarray,
    bounds: np.ndarray,
    run: int,
    run_dtype: np.dtype,
    visit: Visit | None,
    total: np.ndarray,
    groups: np.ndarray | None,
) -> None:
    """Add the groups' sums to ``total`` (and store them in ``groups``), in runs of ``run``."""
    piece = np.empty(array.shape[1:], dtype=run_dtype)  # one run's sum
    unit = np.empty_like(total)
    direct = groups is not None and piece.dtype == groups.dtype
    for g, (begin, end) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        if end - begin <= run:  # one run: its sum is the unit's sum (stored as is if float32)
            block = array[begin:end]
            out = groups[g].reshape(piece.shape) if direct else piece
            np.add.reduce(block, axis=0, dtype=piece.dtype, out=out)  # rows in order
            if visit is not None:
                visit(begin, block)
            if groups is not None and not direct:
                groups[g] = out.reshape(-1)
            total += out  # 0 + u_0 = u_0 exactly
            continue
        for start in range(begin, end, run):  # runs, their sums added in float64, in order
            block = array[start : min(end, start + run)]
            np.add.reduce(block, axis=0, dtype=piece.dtype, out=piece)
            if visit is not None:
                visit(start, block)
            if start == begin:
                unit[...] = piece
            else:
                unit += piece
        if groups is not None:
            groups[g] = unit.reshape(-1)
        total += unit


def _add_block(acc: np.ndarray, part: np.ndarray, block: np.ndarray, first: bool) -> None:
    """``acc`` = (or +=) the float64 sum of ``block``'s rows, numpy's row-after-row order."""
    if first:
        np.add.reduce(block, axis=0, dtype=np.float64, out=acc)
    else:
        np.add.reduce(block, axis=0, dtype=np.float64, out=part)
        acc += part


def sum_over_samples(array: np.ndarray) -> np.ndarray:
    """Σ_n ``array[n]`` in float64, ``[N, L, E] → [L, E]``: the numerator of a signature.

    A loaded :class:`~core.formats.bundle.Bundle` already holds it for its float
    statistics (``Bundle.total``), formed by the pass of the value checks.
    """
    return blocked_sums(array, keep_groups=False).total
