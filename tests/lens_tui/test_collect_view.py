"""The collection view: a real run on a tiny GPT-OSS in the thread worker, cancel, errors, form checks."""

from __future__ import annotations

import threading
import warnings

import pytest
from textual.widgets import Checkbox, Input, ProgressBar

from core.engine import Profile, compare
from core.errors import LensError
from lens_tui.app import build_app
from lens_tui.render import BIVARIATE_LABELS, fmt
from lens_tui.views.collect import CollectView, parse_form
from lens_tui.widgets.cards import MetricCard
from tests.lens_tui.helpers import async_test, record_notifications

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Mixture-of-experts models route every token to a few experts.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "def add(a, b): return a + b",
    "Calibration data decides which experts survive pruning.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
]


@pytest.fixture(scope="module")
def tiny_gpt_oss(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_models import build_tiny_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_tiny_model("gpt_oss", tmp_path_factory.mktemp("models") / "m")


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("\n".join(TEXTS * 4) + "\n", encoding="utf-8")  # 24 samples
    return path


@pytest.fixture
def long_data_file(tmp_path):
    """Enough one-sample batches that a cancel pressed at once always lands mid-run."""
    path = tmp_path / "long.txt"
    path.write_text("\n".join(TEXTS * 100) + "\n", encoding="utf-8")  # 600 samples
    return path


def fill_form(app, **values: str) -> None:
    for name, value in values.items():
        app.query_one(f"#collect-{name}", Input).value = value


async def open_form(app, pilot, **values: str) -> CollectView:
    """Switch to the Collect view (key 4) and fill the form's fields."""
    await pilot.pause()
    await pilot.press("4")
    await pilot.pause()
    fill_form(app, **values)
    return app.query_one(CollectView)


async def wait_for_run(app, pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


@async_test
async def test_a_collection_runs_in_the_worker_reports_progress_and_joins_the_set(
    tiny_gpt_oss, data_file, tmp_path
):
    out = tmp_path / "out" / "calib.safetensors"
    app = build_app([])
    notes = record_notifications(app)
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(
            app,
            pilot,
            model=str(tiny_gpt_oss),
            data=str(data_file),
            out=str(out),
            max_length="32",
            batch_size="4",
            num_samples="",
        )
        main_thread = threading.get_ident()
        seen_threads: set[int] = set()
        original = view.post_message

        def spy(message):
            seen_threads.add(threading.get_ident())
            return original(message)

        view.post_message = spy
        await pilot.press("ctrl+s")
        await wait_for_run(app, pilot)

        assert view.worker.name == "collect" and view.worker.is_finished
        assert seen_threads - {main_thread}, "progress must come from the worker thread"
        assert view.progress_updates >= 3  # loading, collecting per batch, writing, done
        assert view.last_progress.stage == "done"
        bar = app.query_one("#collect-progress", ProgressBar)
        assert (bar.progress, bar.total) == (24, 24)
        status = str(app.query_one("#collect-status").render())
        assert status == f"done: wrote {out}"
        assert out.exists()
        # The bundle joined the loaded set and is dataset B; the compare view shows its numbers.
        assert app.labels == ["calib"] and app.b == 0
        assert ("information", "loaded calib as dataset B") in notes
        await pilot.press("1")
        await pilot.pause()
        profile = Profile.load(out)
        assert profile.bundle.num_samples == 24
        expected = compare(profile, profile, app.r).to_json()["mean"]
        card = app.query_one("#card-ab", MetricCard)
        assert (
            card.value(BIVARIATE_LABELS["jaccard"])
            == fmt(expected["jaccard"], "jaccard")
            == "1.0000"
        )


@async_test
async def test_a_cancelled_run_leaves_nothing_broken_and_a_rerun_finishes(
    tiny_gpt_oss, long_data_file, tmp_path
):
    out = tmp_path / "run.safetensors"
    app = build_app([])
    notes = record_notifications(app)
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(
            app,
            pilot,
            model=str(tiny_gpt_oss),
            data=str(long_data_file),
            out=str(out),
            max_length="16",
            batch_size="1",
        )
        await pilot.press("ctrl+s", "ctrl+g")  # cancel at once: long before 600 batches of 1
        await wait_for_run(app, pilot)
        assert not view.running
        status = str(app.query_one("#collect-status").render())
        assert status == "cancelled: run again with the same output to resume"
        assert ("warning", "collection cancelled") in notes
        assert not out.exists()  # no finished-looking bundle
        assert app.labels == [] and app.is_running
        await pilot.press("ctrl+g")  # nothing to cancel: a warning, no crash
        assert ("warning", "no collection is running") in notes

        fill_form(app, batch_size="64")  # batch size is not part of the run: it resumes
        await pilot.press("ctrl+s")  # the same run again resumes and finishes
        await wait_for_run(app, pilot)
        assert out.exists() and app.labels == ["run"]
        assert Profile.load(out).bundle.num_samples == 600


@async_test
async def test_collection_errors_are_notifications_and_the_app_keeps_running(data_file, tmp_path):
    app = build_app([])
    notes = record_notifications(app)
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(
            app,
            pilot,
            model=str(tmp_path / "no-model"),
            data=str(tmp_path / "no-such-data.txt"),
            out=str(tmp_path / "x.safetensors"),
        )
        await pilot.press("ctrl+s")
        await wait_for_run(app, pilot)
        errors = [msg for severity, msg in notes if severity == "error"]
        assert len(errors) == 1 and "no-such-data.txt" in errors[0]
        assert "failed" in str(app.query_one("#collect-status").render())
        assert not view.running and app.is_running
        # The bar stops pulsing (an indeterminate bar has no total) once the run has failed.
        assert app.query_one("#collect-progress", ProgressBar).total == 1

        # An existing file at the output is refused unless "overwrite" is ticked.
        taken = tmp_path / "taken.safetensors"
        taken.write_bytes(b"not a bundle")
        fill_form(app, data=str(data_file), out=str(taken))
        await pilot.press("ctrl+s")
        await wait_for_run(app, pilot)
        errors = [msg for severity, msg in notes if severity == "error"]
        assert any("taken.safetensors" in msg and "overwrite" in msg for msg in errors)
        assert app.query_one("#collect-overwrite", Checkbox).value is False


@async_test
async def test_an_incomplete_form_is_refused_before_any_worker_starts(tmp_path):
    app = build_app([])
    notes = record_notifications(app)
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(app, pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert view.worker is None
        assert ("error", "model is required") in notes


def test_parse_form_turns_text_into_collect_config_arguments(tmp_path):
    values = {
        "model": " m ",
        "data": "d.txt",
        "out": "o.safetensors",
        "num_samples": "",
        "max_length": "64",
        "batch_size": "2",
    }
    parsed = parse_form(values)
    assert parsed["model"] == "m" and parsed["num_samples"] is None
    assert (parsed["max_length"], parsed["batch_size"]) == (64, 2)
    with pytest.raises(LensError, match="max length must be a whole number"):
        parse_form({**values, "max_length": "1e3"})
    with pytest.raises(LensError, match="batch size must be at least 1"):
        parse_form({**values, "batch_size": "0"})
    with pytest.raises(LensError, match="must end in .safetensors"):
        parse_form({**values, "out": "o.bin"})


def test_parse_form_refuses_an_output_over_the_model_or_the_data(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    data = tmp_path / "d.safetensors"
    data.write_bytes(b"data")
    values = {"model": str(model), "data": str(data), "num_samples": "", "max_length": "8",
              "batch_size": "1"}  # fmt: skip
    with pytest.raises(LensError, match="inside the input folder"):
        parse_form({**values, "out": str(model / "model.safetensors")})
    with pytest.raises(LensError, match="inputs"):
        parse_form({**values, "out": str(data)})
    with pytest.raises(LensError, match="/proc"):
        parse_form({**values, "out": "/proc/x.safetensors"})
    assert parse_form({**values, "out": str(tmp_path / "new.safetensors")})["out"].name == (
        "new.safetensors"
    )
    assert (model / "model.safetensors").read_bytes() == b"weights"


@async_test
async def test_an_unfinished_run_with_other_settings_is_named_briefly_and_can_be_discarded(
    tiny_gpt_oss, data_file, tmp_path
):
    out = tmp_path / "run.safetensors"
    partial = tmp_path / "run.safetensors.partial"
    partial.mkdir()
    (partial / "run.json").write_text('{"model": "another-model"}', encoding="utf-8")
    app = build_app([])
    notes = record_notifications(app)
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(
            app, pilot, model=str(tiny_gpt_oss), data=str(data_file), out=str(out)
        )
        await pilot.press("ctrl+s")
        await wait_for_run(app, pilot)
        status = str(app.query_one("#collect-status").render())
        assert "run.safetensors.partial/ holds an unfinished run with other settings" in status
        assert "data" in status and "ctrl+d" in status  # the first differing settings, by name
        assert "sha256" not in status and "sha256" not in notes[-1][1]
        await pilot.press("escape", "ctrl+d")  # leave the form field, discard
        await pilot.pause()
        assert not partial.exists()
        await pilot.press("ctrl+s")  # now it runs afresh
        await wait_for_run(app, pilot)
        assert out.exists() and view.blocked_by_partial is None


@async_test
async def test_a_folder_not_made_by_a_run_is_never_discarded(tmp_path):
    app = build_app([])
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(app, pilot)
        out = tmp_path / "mine.safetensors"
        folder = tmp_path / "mine.safetensors.partial"
        folder.mkdir()
        (folder / "notes.txt").write_text("the user's own", encoding="utf-8")
        view.blocked_by_partial = out
        view.action_discard_partial()
        await pilot.pause()
        assert (folder / "notes.txt").exists()


@async_test
async def test_quitting_during_a_run_asks_first(
    tiny_gpt_oss, long_data_file, tmp_path, monkeypatch
):
    import time

    import core.collect.runner as runner
    from lens_tui.widgets.confirm import ConfirmScreen

    real = runner.run_collection

    def held(config, progress=None, should_stop=None):
        """The real collection, held until the test cancels: it must still be running at q."""
        deadline = time.monotonic() + 60
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(0.01)
        return real(config, progress=progress, should_stop=should_stop)

    monkeypatch.setattr(runner, "run_collection", held)
    app = build_app([])
    async with app.run_test(size=(100, 40)) as pilot:
        view = await open_form(
            app,
            pilot,
            model=str(tiny_gpt_oss),
            data=str(long_data_file),
            out=str(tmp_path / "q.safetensors"),
            batch_size="1",
        )
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert view.running
        await pilot.press("escape", "q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("n")  # stay
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("ctrl+g")
        await wait_for_run(app, pilot)
        assert not view.running
