"""The value checks' pass also forms the sums over samples (issue 14).

The sums are checked against an independent reference (``math.fsum`` per
entry, exact to one rounding), against hand loops in the documented order
(float64 blocks; above MAX_UNITS float32 runs inside a unit), and against the
order the whole-tensor numpy reduce uses where a bundle fits in one block,
which keeps every golden file byte-identical; the error a check raises must
still name the first bad index when the bad value sits in a late block.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.engine import Profile
from core.errors import BundleError
from core.formats.bundle import bundle_metadata, load_bundle
from core.sample_sums import FLOAT32_RUN, MAX_UNITS, block_samples, sum_over_samples
from tests.conftest import make_bundle


def _write_raw(path, prob: np.ndarray, tokens: np.ndarray):
    """A bundle file written without validation (the writer refuses bad values)."""
    from safetensors.numpy import save_file

    tensors = {
        "prob_sum": prob,
        "token_count": tokens.astype(np.int64),
        "example_ids": np.arange(len(tokens), dtype=np.int64),
    }
    meta = bundle_metadata(
        model="tiny-moe",
        dataset="bad",
        num_layers=prob.shape[1],
        num_experts=prob.shape[2],
        top_k=2,
    )
    save_file(tensors, str(path), metadata=meta)
    return path


def _fsum(array: np.ndarray) -> np.ndarray:
    """Σ_n per (l, e), correctly rounded (math.fsum), independent of numpy's order."""
    flat = np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)
    return np.array([math.fsum(flat[:, j]) for j in range(flat.shape[1])]).reshape(array.shape[1:])


def _block(layers: int, experts: int) -> int:
    return block_samples(np.empty((1, layers, experts), dtype=np.float32))


def _hand_sum(rows: np.ndarray) -> np.ndarray:
    """float64 rows added one after another (numpy's order within a block)."""
    acc = rows[0].astype(np.float64)
    for row in rows[1:]:
        acc = acc + row
    return acc


def _hand_sum32(rows: np.ndarray) -> np.ndarray:
    """float32 rows added one after another, each addition rounded to float32."""
    assert rows.dtype == np.float32
    acc = rows[0].copy()
    for row in rows[1:]:
        acc = acc + row  # float32 + float32: float32
    return acc


def _hand_units(array: np.ndarray, sizes: list[int], run: int) -> list[np.ndarray]:
    """Each unit: float32 runs of ``run`` samples, the runs' sums added in float64."""
    starts = np.concatenate([[0], np.cumsum(sizes)])
    units = []
    for start, size in zip(starts, sizes):
        pieces = [
            _hand_sum32(array[s : min(start + size, s + run)])
            for s in range(start, start + size, run)
        ]
        unit = pieces[0].astype(np.float64)
        for piece in pieces[1:]:
            unit = unit + piece.astype(np.float64)
        units.append(unit)
    return units


@pytest.mark.parametrize(("n", "layers", "experts"), [(20, 6, 16), (900, 8, 32), (4000, 6, 16)])
def test_load_forms_the_sums_of_every_float_statistic(tmp_path, n, layers, experts):
    """One block; several blocks of single samples; units of four samples (n > MAX_UNITS)."""
    path = make_bundle(tmp_path / "a.safetensors", n=n, layers=layers, experts=experts)
    bundle = load_bundle(path)
    assert sorted(bundle.totals) == ["energy_sum", "prob_sum"]
    for name, total in bundle.totals.items():
        array = np.asarray(bundle.tensors[name])
        assert total.dtype == np.float64 and total.shape == (layers, experts)
        # Any order of float64 sums of these n float32 terms (all ≥ 0) is within n ulps of the
        # exact sum; above MAX_UNITS float32 runs of ≤ FLOAT32_RUN terms add (run − 1)·2^-24.
        rtol = 4 * n * 2.0**-53 + (FLOAT32_RUN - 1) * 2.0**-24 * (n > MAX_UNITS)
        np.testing.assert_allclose(total, _fsum(array), rtol=rtol, atol=0)
        # The on-demand sum (bundles built in memory) gives the same bits as the fused pass.
        assert np.array_equal(sum_over_samples(array), total)


def test_a_bundle_in_one_block_sums_exactly_as_the_whole_tensor_reduce(tmp_path):
    """The shipped bundles (≤ MAX_UNITS samples, one block): their goldens keep every bit."""
    n = min(_block(4, 32), MAX_UNITS)  # the largest bundle of this shape summed in one block
    bundle = load_bundle(make_bundle(tmp_path / "a.safetensors", n=n, layers=4, experts=32))
    whole = np.add.reduce(np.asarray(bundle.prob_sum), axis=0, dtype=np.float64)
    assert np.array_equal(bundle.total("prob_sum"), whole)


def test_single_sample_units_are_summed_as_block_sums_in_order(tmp_path):
    n = 900  # ≤ MAX_UNITS: every sample is a unit; blocks of _block(8, 32) = 512 samples
    assert n <= MAX_UNITS and _block(8, 32) < n
    bundle = load_bundle(make_bundle(tmp_path / "a.safetensors", n=n, layers=8, experts=32))
    array = np.asarray(bundle.prob_sum)
    step = _block(8, 32)
    expected = _hand_sum(array[:step]) + _hand_sum(array[step:])
    assert np.array_equal(bundle.total("prob_sum"), expected)
    assert bundle.unit_sums("prob_sum") is None  # the rows are their own sums


def test_larger_units_are_summed_unit_by_unit_and_kept_for_the_bootstrap(tmp_path):
    n = 2 * MAX_UNITS + 7  # units of 3 samples (the first 7) and 2
    bundle = load_bundle(make_bundle(tmp_path / "a.safetensors", n=n, layers=3, experts=8))
    for name in ("prob_sum", "energy_sum"):
        array = np.asarray(bundle.tensors[name])
        sizes = [3] * 7 + [2] * (MAX_UNITS - 7)
        units = _hand_units(array, sizes, FLOAT32_RUN)
        expected = units[0]
        for unit in units[1:]:
            expected = expected + unit
        assert np.array_equal(bundle.total(name), expected)
        kept = bundle.unit_sums(name)
        assert kept.dtype == np.float32 and kept.shape == (MAX_UNITS, 3 * 8)
        assert np.array_equal(kept, np.array(units, dtype=np.float32).reshape(MAX_UNITS, -1))


def test_a_unit_longer_than_a_float32_run_adds_its_runs_in_float64(tmp_path):
    size = FLOAT32_RUN + 2  # units of 35 samples (the first 5) and 34: two runs each
    assert block_samples(np.empty((1, 2, 4), dtype=np.float32)) > FLOAT32_RUN
    n = size * MAX_UNITS + 5
    bundle = load_bundle(make_bundle(tmp_path / "a.safetensors", n=n, layers=2, experts=4))
    array = np.asarray(bundle.prob_sum)
    sizes = [size + 1] * 5 + [size] * (MAX_UNITS - 5)
    units = _hand_units(array, sizes, FLOAT32_RUN)
    expected = units[0]
    for unit in units[1:]:
        expected = expected + unit
    assert np.array_equal(bundle.total("prob_sum"), expected)
    kept = bundle.unit_sums("prob_sum")
    assert np.array_equal(kept, np.array(units, dtype=np.float32).reshape(MAX_UNITS, -1))


def test_values_near_the_float32_maximum_do_not_overflow_a_float32_run(tmp_path):
    """3e38 + 3e38 overflows float32: those sums are formed with float64 runs instead."""
    n = 2 * MAX_UNITS + 7  # units of 3 samples (the first 7) and 2
    big = np.full((n, 3, 8), 3e38, dtype=np.float32)
    big[::5] = 1.0  # not all equal, so the order shows
    path = make_bundle(
        tmp_path / "a.safetensors", n=n, layers=3, experts=8, extra={"energy_sum": big}
    )
    bundle = load_bundle(path)
    sizes = [3] * 7 + [2] * (MAX_UNITS - 7)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    units = [_hand_sum(big[s : s + k]) for s, k in zip(starts, sizes)]
    expected = units[0]
    for unit in units[1:]:
        expected = expected + unit
    total = bundle.total("energy_sum")
    assert np.isfinite(total).all()
    assert np.array_equal(total, expected)
    # prob_sum's own float32 runs are unaffected by the other tensor's fallback.
    prob = np.asarray(bundle.prob_sum)
    assert np.array_equal(bundle.total("prob_sum"), _sum_units32(prob, sizes))


def _sum_units32(array: np.ndarray, sizes: list[int]) -> np.ndarray:
    units = _hand_units(array, sizes, FLOAT32_RUN)
    expected = units[0]
    for unit in units[1:]:
        expected = expected + unit
    return expected


def test_profile_signature_comes_from_the_sums_formed_on_load(tmp_path):
    path = make_bundle(tmp_path / "a.safetensors", n=40, layers=3, experts=8)
    profile = Profile.load(path)
    raw = load_bundle(path)
    tokens = int(np.asarray(raw.token_count).sum())
    np.testing.assert_allclose(profile.prob, _fsum(raw.prob_sum) / tokens, rtol=1e-13, atol=0)
    np.testing.assert_allclose(
        profile.energy, _fsum(raw.tensors["energy_sum"]) / tokens, rtol=1e-13, atol=0
    )


def test_cached_totals_cannot_be_edited_in_place(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path / "a.safetensors", n=5))
    with pytest.raises(ValueError):
        bundle.total("prob_sum")[0, 0] = 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1e-30])
def test_a_bad_value_in_a_late_block_is_named_by_its_index(tmp_path, bad):
    n = 3 * _block(3, 8) + 5
    rng = np.random.default_rng(1)
    tokens = rng.integers(1, 40, size=n)
    prob = rng.dirichlet(np.ones(8), size=(n, 3)) * tokens[:, None, None]
    prob = prob.astype(np.float32)
    at = (n - 2, 1, 5)
    prob[at] = bad
    path = _write_raw(tmp_path / "bad.safetensors", prob, tokens)
    with pytest.raises(BundleError, match=rf"'prob_sum' is .* at \[{n - 2}, 1, 5\]"):
        load_bundle(path)


def test_a_row_off_in_a_late_block_is_named(tmp_path):
    n = 2 * _block(3, 8) + 5
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, 40, size=n)
    prob = (rng.dirichlet(np.ones(8), size=(n, 3)) * tokens[:, None, None]).astype(np.float32)
    prob[n - 1, 2] *= 0.5
    path = _write_raw(tmp_path / "bad.safetensors", prob, tokens)
    with pytest.raises(BundleError, match=rf"'prob_sum' row \[{n - 1}, 2\] sums to"):
        load_bundle(path)
