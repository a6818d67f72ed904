"""The Textual driver of a served app session: it ends the process when its server goes away.

textual-serve talks to each session's app over the app's stdin/stdout. Textual's
own ``WebDriver`` stops reading when stdin reaches end-of-file (the server
stopped, crashed or was killed) but never tells the app, so the app ran on with
no input and no screen, forever. Here the end of stdin asks the app to exit and,
should the app not manage to within a few seconds, ends the process; SIGTERM,
SIGINT and SIGHUP do the same. ``lens serve`` selects this driver through
``TEXTUAL_DRIVER``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading

from textual import messages
from textual.drivers.web_driver import WebDriver

#: Seconds a session gets to exit cleanly before the process is ended outright.
EXIT_GRACE_S = 3.0


class ServedDriver(WebDriver):
    """``WebDriver`` whose app exits when its input ends or a termination signal arrives."""

    _loop: asyncio.AbstractEventLoop | None = None
    _exiting = False

    def start_application_mode(self) -> None:
        self._loop = asyncio.get_running_loop()
        super().start_application_mode()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._loop.add_signal_handler(signum, self._request_exit)

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set():  # stdin ended while the app still runs
            self._request_exit()

    def _request_exit(self) -> None:
        """Ask the app to quit, and end the process if it has not within the grace period."""
        if self._exiting:
            return
        self._exiting = True
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is already shutting down
                asyncio.run_coroutine_threadsafe(
                    self._app._post_message(messages.ExitApp()), self._loop
                )
        deadline = threading.Timer(EXIT_GRACE_S, os._exit, args=(0,))
        deadline.daemon = True
        deadline.start()
