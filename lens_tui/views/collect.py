"""Collection view: a form that runs ``core.collect`` in a thread worker with live progress.

The worker imports ``core.collect.runner`` (and through it torch) only when a
run starts, so browsing never loads torch. Progress crosses threads as
:class:`~lens_tui.messages.CollectProgressed` messages (``post_message`` is
thread-safe); cancelling sets an event the runner polls between batches, and
the view waits for the runner to stop before it allows another run.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import Checkbox, Input, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from core.errors import LensError
from core.io.outputs import check_output
from lens_tui.messages import BundleCollected, CollectProgressed


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    placeholder: str
    default: str = ""
    integer: bool = False


FIELDS = (
    Field("model", "model", "local folder or hub id, e.g. openai/gpt-oss-20b"),
    Field("data", "data", ".txt / .jsonl / .parquet path or a datasets name"),
    Field("out", "output", "bundle to write, e.g. c4.safetensors"),
    Field("num_samples", "samples", "empty = all", integer=True),
    Field("max_length", "max length", "tokens per sample", "512", integer=True),
    Field("batch_size", "batch size", "samples per forward pass", "8", integer=True),
)
COLLECT_EXTRA_HINT = "pip install 'expert-calibration-lens[collect]' (with torch==2.13.0 here)"


def parse_form(values: dict[str, str]) -> dict[str, object]:
    """The form's text as ``CollectConfig`` keyword arguments; a clear LensError if not valid."""
    config: dict[str, object] = {}
    for field in FIELDS:
        text = values.get(field.name, "").strip()
        if field.integer:
            if not text:
                if field.default:
                    raise LensError(f"{field.label} is required")
                config[field.name] = None
                continue
            try:
                number = int(text)
            except ValueError:
                raise LensError(f"{field.label} must be a whole number (got {text!r})") from None
            if number < 1:
                raise LensError(f"{field.label} must be at least 1 (got {number})")
            config[field.name] = number
        else:
            if not text:
                raise LensError(f"{field.label} is required")
            config[field.name] = text
    out = Path(str(config["out"])).expanduser()
    if out.suffix != ".safetensors":
        raise LensError(f"output {out}: a bundle file must end in .safetensors")
    # The same output rules as lens collect: never over the model or the data.
    check_output(out, [config.get("model"), config.get("data")], option="output")
    config["out"] = out
    return config


class CollectView(VerticalScroll):
    """Fill the form, ctrl+s starts, ctrl+g cancels; the finished bundle joins the loaded set."""

    #: What the help screen says of this view (Markdown, after "**Collect** — ").
    SUMMARY = """\
    run a collection on a model and a dataset; the bundle joins
    the loaded set when it is done."""

    BINDINGS = [
        Binding("ctrl+s", "start", "Start", priority=True),
        Binding("ctrl+g", "cancel", "Cancel run", priority=True),
        Binding(
            "ctrl+d",
            "discard_partial",
            "Discard partial",
            priority=True,
            show=False,
            tooltip="Delete the unfinished run (OUT.partial/) that blocks a run with new settings",
        ),
        Binding("escape", "leave_form", "Leave field", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.worker: Worker | None = None
        self._stop = threading.Event()
        self.last_progress: object | None = None
        self.progress_updates = 0
        #: The output whose ``.partial/`` run blocked the last start (ctrl+d may discard it).
        self.blocked_by_partial: Path | None = None
        self._out: Path | None = None

    def compose(self) -> ComposeResult:
        with Grid(id="collect-form"):
            for field in FIELDS:
                yield Label(field.label, classes="form-label")
                yield Input(
                    value=field.default,
                    placeholder=field.placeholder,
                    id=f"collect-{field.name}",
                    type="integer" if field.integer else "text",
                    select_on_focus=False,
                )
            yield Label("overwrite", classes="form-label")
            yield Checkbox("replace an existing bundle at output", id="collect-overwrite")
        yield ProgressBar(id="collect-progress", show_eta=False, total=1)
        yield Static(id="collect-status")
        yield Static(Text(collection_hint(), style="dim"), id="collect-hint")

    def on_mount(self) -> None:
        self.query_one("#collect-form").border_title = "collect router statistics"
        self._set_status("idle: fill the form and press ctrl+s", "dim")

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        )

    def form_values(self) -> dict[str, str]:
        return {f.name: self.query_one(f"#collect-{f.name}", Input).value for f in FIELDS}

    def config_kwargs(self) -> dict[str, object]:
        """``CollectConfig`` keyword arguments from the form (a LensError if it is not valid)."""
        config = parse_form(self.form_values())
        config["overwrite"] = self.query_one("#collect-overwrite", Checkbox).value
        config["command"] = "lens app: collect view"
        return config

    def _set_status(self, message: str, style: str = "") -> None:
        self.query_one("#collect-status", Static).update(Text(message, style=style))

    # ------------------------------------------------------------------ actions

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_start()

    def action_start(self) -> None:
        if self.running:
            self.app.notify(
                "a collection is already running (ctrl+g cancels it)", severity="warning"
            )
            return
        try:
            config = self.config_kwargs()
        except LensError as exc:
            self.app.notify(str(exc), title="collection", severity="error", markup=False)
            return
        self._stop = threading.Event()
        self.last_progress = None
        self.blocked_by_partial = None
        self._out = Path(str(config["out"]))
        bar = self.query_one("#collect-progress", ProgressBar)
        bar.update(total=None, progress=0)
        self._set_status(f"starting: {config['model']} on {config['data']} → {config['out']}")
        stop = self._stop
        self.worker = self.run_worker(
            lambda: self._collect(config, stop),
            name="collect",
            group="collect",
            thread=True,
            exit_on_error=False,
        )

    def action_cancel(self) -> None:
        if not self.running:
            self.app.notify("no collection is running", severity="warning")
            return
        self._stop.set()
        self._set_status("cancelling after the current batch…", "yellow")

    def action_leave_form(self) -> None:
        self.focus()

    def action_discard_partial(self) -> None:
        """Delete the unfinished run that blocked the last start, if a run created it.

        ``PartialRun.remove`` deletes only a folder holding a run's ``run.json``:
        a folder of the user's own under that name is never touched.
        """
        from core.collect.partial import RUN_FILE, PartialRun, partial_dir

        out = self.blocked_by_partial
        if out is None or self.running:
            self.app.notify("no unfinished run to discard", severity="warning")
            return
        folder = partial_dir(out)
        if not (folder / RUN_FILE).is_file() or folder.is_symlink():
            self.app.notify(f"{folder} is not a lens collect run: left alone", severity="warning")
            return
        PartialRun(out, {}).remove()
        self.blocked_by_partial = None
        self._set_status(f"discarded {folder.name}/: ctrl+s starts afresh", "yellow")
        self.app.notify(f"discarded {folder}", title="collection")

    def stop_progress(self) -> None:
        """An idle bar: a failed or cancelled run must not leave it pulsing ``--%`` forever."""
        self.query_one("#collect-progress", ProgressBar).update(total=1, progress=0)

    # ------------------------------------------------------------------ worker

    def _collect(self, config: dict[str, object], stop: threading.Event) -> Path | None:
        """Runs in a thread: the real collection; ``None`` when cancelled."""
        from core.collect.runner import CollectConfig, CollectionCancelled, run_collection

        worker = get_current_worker()
        try:
            return run_collection(
                CollectConfig.from_settings(**config),
                progress=lambda p: self.post_message(CollectProgressed(p)),
                should_stop=lambda: stop.is_set() or worker.is_cancelled,
            )
        except CollectionCancelled:
            return None

    def on_collect_progressed(self, message: CollectProgressed) -> None:
        message.stop()
        p = message.progress
        self.last_progress = p
        bar = self.query_one("#collect-progress", ProgressBar)
        bar.update(total=max(1, p.samples_total), progress=p.samples_done)
        note = getattr(p, "message", "")
        self._set_status(
            f"{p.stage}: {p.samples_done:,}/{p.samples_total:,} samples · "
            f"{p.tokens_done:,} tokens · {p.tokens_per_s:,.0f} tok/s · "
            f"{p.samples_per_s:,.1f} samples/s · {p.elapsed_s:.1f} s"
            + (f"\n{note}" if note else "")
        )
        self.progress_updates += 1

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker:
            return
        event.stop()
        worker = event.worker
        if event.state != WorkerState.SUCCESS or worker.result is None:
            self.stop_progress()
        if event.state == WorkerState.SUCCESS:
            if worker.result is None:
                self._set_status("cancelled: run again with the same output to resume", "yellow")
                self.app.notify("collection cancelled", title="collection", severity="warning")
            else:
                path = Path(worker.result)
                self._set_status(f"done: wrote {path}", "green")
                self.post_message(BundleCollected(path))
        elif event.state == WorkerState.CANCELLED:
            self._set_status("stopped", "yellow")
        elif event.state == WorkerState.ERROR:
            keys = partial_conflict(worker.error)
            if keys is not None and self._out is not None:
                self.blocked_by_partial = self._out
                message = (
                    f"{self._out.name}.partial/ holds an unfinished run with other settings "
                    f"({', '.join(keys) or 'unreadable run.json'}): restore them to resume it, "
                    "or ctrl+d discards it"
                )
            else:
                message = describe_error(worker.error)
            self._set_status(f"failed: {message}", "red")
            self.app.notify(
                message, title="collection failed", severity="error", timeout=10, markup=False
            )


_CONFLICT = re.compile(r"holds an unfinished run with different settings \((.*)\); re-run")


def partial_conflict(error: BaseException | None) -> list[str] | None:
    """The settings that differ when an unfinished run blocks this one, else ``None``.

    ``core.collect.partial`` names each difference with both values, and the
    data's value is a sha256 of its content: right for a log, unreadable in a
    status line, so the view names only the settings.
    """
    if not isinstance(error, LensError):
        return None
    match = _CONFLICT.search(str(error))
    if match is None:
        return None
    return re.findall(r"(?:^|, )'?([A-Za-z_][\w.]*)'?: ", match.group(1))


def describe_error(error: BaseException | None) -> str:
    """One line for a failed run: LensError text as is, a missing extra with the fix."""
    if isinstance(error, LensError):
        return str(error)
    if isinstance(error, ModuleNotFoundError):
        return f"collection is not available here ({error}): {COLLECT_EXTRA_HINT}"
    return f"{type(error).__name__}: {error}"


def collection_hint() -> str:
    """What the form needs, checked without importing torch (browsing must stay light)."""
    from importlib.util import find_spec

    if find_spec("torch") is None or find_spec("transformers") is None:
        return (
            "Collection needs torch + transformers on this machine "
            f"({COLLECT_EXTRA_HINT}). Browsing does not."
        )
    return (
        "Runs the `lens collect` pipeline in the background: ctrl+g cancels, and "
        "starting the same job again resumes where it stopped."
    )
