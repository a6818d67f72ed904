"""``lens serve``'s web server: textual-serve with sessions that cannot outlive it.

textual-serve starts one app process per browser websocket. Three things are
changed here, each without touching textual-serve itself:

- sessions end: when a websocket closes (even abruptly), the app is asked to
  quit and, if it has not within a few seconds, terminated and then killed;
  when the server stops (Ctrl+C, SIGTERM) every live session is ended the same
  way; and the app's own driver (:mod:`lens_tui.serve_driver`) exits when its
  stdin closes, which covers a server that was killed outright;
- the page (``serve_templates/app_index.html``) uses relative URLs and serves
  its fonts itself, so it works behind any SSH port forward and offline;
- the app command is ``exec``'d, so the session's process is the app itself
  (signals reach it; no shell lingers).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

log = logging.getLogger("textual-serve")

TEMPLATES = Path(__file__).with_name("serve_templates")
DRIVER = "lens_tui.serve_driver:ServedDriver"
#: Seconds a session gets to quit by itself, then to end on SIGTERM, before SIGKILL.
QUIT_GRACE_S = 3.0
TERM_GRACE_S = 2.0


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server private to this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SessionService(AppService):
    """One browser session's app process, which :meth:`stop` always ends."""

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width, height)
        environment["TEXTUAL_DRIVER"] = DRIVER
        return environment

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def stop(self) -> None:
        """Ask the app to quit; terminate, then kill, a process that does not."""
        process = self._process
        if process is None:
            return
        if self._task is not None:
            await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
            await self.send_meta({"type": "quit"})
        for step, grace in ((None, QUIT_GRACE_S), (process.terminate, TERM_GRACE_S)):
            if process.returncode is not None:
                break
            if step is not None:
                try:
                    step()
                except ProcessLookupError:
                    break
            try:
                await asyncio.wait_for(process.wait(), grace)
            except asyncio.TimeoutError:
                continue
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._stdin is not None:
            self._stdin.close()
        if self._task is not None:
            task, self._task = self._task, None
            await task


class LensServer(Server):
    """textual-serve's server with sessions that end, and a page that is self-contained."""

    def __init__(self, command: str, *, host: str, port: int, title: str) -> None:
        super().__init__(command, host=host, port=port, title=title, templates_path=TEMPLATES)
        self.sessions: set[SessionService] = set()

    async def on_startup(self, app: web.Application) -> None:
        """One line on stdout (textual-serve prints a logo and the internal command)."""
        self.console.print(f"lens serve: {self.public_url}/  (Ctrl+C to quit)", highlight=False)

    async def on_shutdown(self, app: web.Application) -> None:
        """Server stopping: end every session that is still open."""
        await asyncio.gather(*(s.stop() for s in list(self.sessions)), return_exceptions=True)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """Template data with relative URLs only (the page computes its websocket URL)."""
        font_size = min(max(to_int(request.query.get("fontsize", "16"), 16), 6), 64)
        return {
            "font_size": font_size,
            "config": {"static": {"url": "static/"}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One session: start its app, relay messages, and end the app however the socket ends."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = min(max(to_int(request.query.get("width", "80"), 80), 10), 1000)
        height = min(max(to_int(request.query.get("height", "24"), 24), 5), 500)
        service: SessionService | None = None
        try:
            await websocket.prepare(request)
            service = SessionService(
                self.command,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            self.sessions.add(service)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            pass
        except Exception as error:  # a malformed message must not leave the app running
            log.warning("session ended: %s", error)
        finally:
            if service is not None:
                # Shielded: a cancelled handler must still end its app process.
                await asyncio.shield(service.stop())
                self.sessions.discard(service)
            if not websocket.closed:
                await websocket.close()
        return websocket
