"""core.ordering.sort_order: numbers by value, NaN / None last both ways, ties by index."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.ordering import sort_order


def by_hand(keys, descending):
    """Insertion sort with the rule spelled out: present values first, then by value, then index."""
    rows: list[int] = []
    for i, key in enumerate(keys):
        missing = key is None or (isinstance(key, float) and math.isnan(key))
        place = len(rows)
        for position, j in enumerate(rows):
            other = keys[j]
            other_missing = other is None or (isinstance(other, float) and math.isnan(other))
            if missing:
                break_here = False  # a gap goes after every present value and every earlier gap
            elif other_missing:
                break_here = True
            else:
                break_here = key > other if descending else key < other
            if break_here:
                place = position
                break
        rows.insert(place, i)
    return rows


@pytest.mark.parametrize("descending", [False, True])
def test_numbers_sort_by_value_with_missing_values_last_and_ties_in_index_order(descending):
    keys = [3.0, None, 1.0, float("nan"), 10.0, 1.0, -2.5, float("inf"), 3.0, None]
    assert sort_order(keys, descending).tolist() == by_hand(keys, descending)
    # Numerically, not as text: "10" would sort before "3" as a string.
    assert sort_order([3.0, 10.0, 2.0]).tolist() == [2, 0, 1]


def test_random_columns_agree_with_the_rule_and_arrays_work_too():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = rng.integers(0, 5, size=12).astype(float)
        values[rng.random(12) < 0.25] = np.nan
        for descending in (False, True):
            expected = by_hand([float(v) for v in values], descending)
            assert sort_order(values, descending).tolist() == expected
