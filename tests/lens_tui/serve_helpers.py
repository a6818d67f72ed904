"""Start ``lens serve`` on a free port and find the app processes of its sessions."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children of children too), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":  # zombies have exited already
            parents[int(entry)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def wait_for(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@contextlib.contextmanager
def serving(*args: str, bundles: Path | None = None) -> Iterator[tuple[subprocess.Popen, int]]:
    """``lens serve`` in a subprocess, ready to answer; stopped (SIGTERM, then SIGKILL) after."""
    port = free_port()
    target = str(bundles or ROOT / "sample_stats" / "news_en.safetensors")
    server = subprocess.Popen(
        [sys.executable, "-m", "lens_tui", "serve", target, "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            except OSError:
                return server.poll() is not None
            return True

        wait_for(up, 20)
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        yield server, port
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def open_raw_session(port: int, timeout: float = 20) -> socket.socket:
    """A websocket handshake on a plain socket, read until the app has drawn something.

    A raw socket lets the test vanish the way a crashed browser or a dropped
    network does: no close frame, just a reset connection.
    """
    import base64

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /ws?width=80&height=24 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    received = b""
    deadline = time.monotonic() + timeout
    while len(received) < 4096 and time.monotonic() < deadline:  # handshake plus a screenful
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    assert received.startswith(b"HTTP/1.1 101"), received[:200]
    return sock


def reset(sock: socket.socket) -> None:
    """Drop the connection abruptly (TCP RST, no websocket close frame)."""
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
