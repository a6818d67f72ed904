"""Compare's bootstrap intervals and permutation test, computed in a child process.

Why a process and not a thread: the intervals take seconds of CPU at
L = 36, E = 128, N = 20,000 and more at frontier scale, and the app repaints
on every key meanwhile. In a thread of the app's own process the two shared
the GIL: on a busy machine the operating system would pause the worker while
it held the GIL, and the UI then waited for the worker's next time slice
before it could paint (a new r took about 4 s on 2 cores at load 18, against
1.4 s with no worker). A child process shares no lock with the UI, and it
runs at a lower priority (``nice`` +10), so the UI keeps the CPU it needs
and the intervals take what is left.

One child serves the app for its whole run (started on first use; it ends
when the app's end of its pipes closes) and keeps the bundles it has read, by
path, size and modification time. The two talk through the child's stdin and
stdout (pickled messages; the child's own prints go nowhere, never onto the
app's screen). Jobs are numbered; cancelling one sends a "cancel" message,
and the child checks for a waiting message between its stages, so it drops
stale work early; answers of stale jobs are discarded. :func:`intervals` is the
child's work, the same functions ``lens compare --ci`` runs with the same
seed: the app shows the command's intervals.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from core import uncertainty as u
from core.engine import Profile

#: How often the waiting thread looks whether its job was cancelled (seconds).
POLL_S = 0.05
#: How much lower the child's CPU priority is than the app's.
CHILD_NICENESS = 10


@dataclass(frozen=True)
class CompareIntervals:
    """Bootstrap intervals and the permutation test for one (A, B, r, τ)."""

    ci: u.CompareCI
    difference: u.Difference

    @property
    def replicates(self) -> int:
        return self.ci.replicates


@dataclass(frozen=True)
class Job:
    """What the child computes: the bundles by path, and the figures' parameters."""

    path_a: Path
    path_b: Path
    r: int
    tau: float
    replicates: int


def intervals(
    a: Profile, b: Profile, job: Job, stopped: Callable[[], bool]
) -> CompareIntervals | None:
    """Intervals and test for A vs B (seed 0); ``None`` if ``stopped()`` between the stages."""
    if stopped():
        return None
    ci = u.bootstrap_compare(a, b, job.r, job.tau, job.replicates, seed=u.DEFAULT_SEED)
    if stopped():
        return None
    difference = u.permutation_test(a, b, job.r, job.replicates, seed=u.DEFAULT_SEED)
    return CompareIntervals(ci, difference)


def serve() -> None:
    """The child's main loop (``python -m lens_tui.intervals_process``)."""
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    quiet = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing the child prints may reach the app's terminal
        os.dup2(quiet, fd)
    warnings.simplefilter("ignore")
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    profiles: dict[tuple, Profile] = {}
    while True:
        try:
            number, job = inbox.recv()
        except (EOFError, OSError):  # the app has gone
            return
        if job is None:  # a cancel: the job it cancels has been dropped or answered
            continue
        try:
            a, b = (_profile(profiles, path) for path in (job.path_a, job.path_b))
            result = intervals(a, b, job, functools.partial(inbox.poll, 0))
        except Exception:  # a failure leaves the intervals unknown ("…"), never the app down
            result = None
        try:
            outbox.send((number, result))
        except OSError:
            return


def _profile(profiles: dict[tuple, Profile], path: Path) -> Profile:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in profiles:
        if len(profiles) >= 8:  # a few recent bundles (each maps its file; memory is the OS's)
            profiles.pop(next(iter(profiles)))
        profiles[key] = Profile.load(path)
    return profiles[key]


class IntervalsProcess:
    """The child process and the pipes to it (one job at a time, thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._outbox: Connection | None = None
        self._inbox: Connection | None = None
        self._number = 0

    def run(self, job: Job, cancelled: Callable[[], bool]) -> CompareIntervals | None:
        """The child's answer to ``job``; ``None`` if ``cancelled()`` first, or on failure."""
        with self._lock:
            self._number += 1
            number = self._number
            try:
                outbox, inbox = self._pipes()
                outbox.send((number, job))
                while True:
                    while not inbox.poll(POLL_S):
                        if cancelled():
                            outbox.send((number, None))  # the child drops it at its next stage
                            return None
                    answered, result = inbox.recv()
                    if answered == number:
                        return result
                    # an answer to an abandoned job: keep waiting for ours
            except (EOFError, OSError):  # the child died: start a new one next time
                self.close()
                return None

    def _pipes(self) -> tuple[Connection, Connection]:
        if self._process is None or self._process.poll() is not None:
            root = str(Path(__file__).resolve().parents[1])  # where this lens_tui is imported from
            code = f"import sys; sys.path.insert(0, {root!r}); import {__name__} as m; m.serve()"
            self._process = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None and stdout is not None
            # The connections own their own copies of the pipes' ends.
            self._outbox = Connection(os.dup(stdin.fileno()), readable=False)
            self._inbox = Connection(os.dup(stdout.fileno()), writable=False)
            stdin.close()
            stdout.close()
        assert self._outbox is not None and self._inbox is not None
        return self._outbox, self._inbox

    def close(self) -> None:
        """Stop the child (the next job starts a new one)."""
        process, self._process = self._process, None
        for connection in (self._outbox, self._inbox):
            if connection is not None:
                connection.close()
        self._outbox = self._inbox = None
        if process is not None:
            process.kill()
            process.wait(timeout=5)


#: The app's one child process (started on first use).
CHILD = IntervalsProcess()
