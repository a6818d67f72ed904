"""How every table of the project orders rows by a column: numbers by value, missing values last.

One rule for ``lens samples --sort`` and for every sortable table of the app,
so a column sorts the same wherever it is shown: NaN and ``None`` (a figure
that is undefined for that row) go last in both directions, since reversing
the order is meant to bring the other extreme to the top, not the gaps; ties
keep the rows' natural order (their index), so a sort is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sort_order(keys: Sequence[float | None] | np.ndarray, descending: bool = False) -> np.ndarray:
    """Row indexes ordered by ``keys`` (ascending, or descending), NaN / ``None`` last, ties by index."""
    if isinstance(keys, np.ndarray):
        values = keys.astype(np.float64)
    else:
        values = np.array([np.nan if k is None else k for k in keys], dtype=np.float64)
    signed = -values if descending else values
    signed = np.where(np.isnan(signed), np.inf, signed)
    missing = np.isnan(values)
    # Missing first key, value second, index last: a real +inf still sorts before a gap.
    return np.lexsort((np.arange(len(values)), signed, missing))
