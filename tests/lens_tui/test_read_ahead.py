"""``lens browse`` starts reading A and B before it imports the app; the app joins those reads."""

from __future__ import annotations

import numpy as np

import core.formats.bundle
import core.formats.bundle_values
import core.sample_sums
from lens_tui.app import build_app
from lens_tui.bundle_reading import read_ahead
from tests.lens_tui.helpers import async_test, record_notifications, write_bundles


def _count_passes(monkeypatch) -> list[tuple[int, ...]]:
    """Shapes of every statistic summed from now on (one entry per pass over a tensor)."""
    passes: list[tuple[int, ...]] = []
    real = core.sample_sums.blocked_sums

    def counting(array, *args, **kwargs):
        passes.append(tuple(array.shape))
        return real(array, *args, **kwargs)

    monkeypatch.setattr(core.formats.bundle_values, "blocked_sums", counting)
    monkeypatch.setattr(core.formats.bundle, "blocked_sums", counting)
    return passes


@async_test
async def test_the_app_takes_the_bundles_read_ahead_and_reads_nothing_twice(tmp_path, monkeypatch):
    write_bundles(tmp_path)  # alpha and beta have energy_sum: 2 statistics each
    passes = _count_passes(monkeypatch)
    read_ahead([tmp_path], remembered=None)
    app = build_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert (app.selection.label_a, app.selection.label_b) == ("alpha", "beta")
        a, b = app.selection.profile_a, app.selection.profile_b
        assert a.has_signature and b.has_signature
        assert len(passes) == 4  # prob_sum and energy_sum of alpha and beta, once each
        # The figures are the file's own (by hand, from the mapped tensor).
        expected = np.asarray(a.bundle.prob_sum, np.float64).sum(axis=0) / a.tokens
        np.testing.assert_allclose(a.prob, expected, rtol=1e-12)
        assert not app.selection.profiles[2].has_signature  # gamma: not A or B, not read


@async_test
async def test_a_corrupt_bundle_read_ahead_is_still_reported_once_by_the_app(tmp_path):
    from tests.hostile.test_browsed_folders import _with_a_nan

    paths = write_bundles(tmp_path)
    bad = _with_a_nan(paths[0], tmp_path / "aaa.safetensors")
    read_ahead([tmp_path], remembered=None)  # guesses aaa and alpha; aaa fails in its thread
    app = build_app([tmp_path])
    notes = record_notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.is_running
        assert (app.selection.label_a, app.selection.label_b) == ("alpha", "beta")
        errors = [m for severity, m in notes if severity == "error"]
        assert len(errors) == 1 and str(bad) in errors[0] and "prob_sum" in errors[0]
