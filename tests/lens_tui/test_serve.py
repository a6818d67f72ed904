"""``lens serve``: sessions end with their browser or server, the page is self-contained,
and the server refuses to expose itself by accident."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from lens_tui.cli import cli
from lens_tui.commands.browse import serve_command_line
from lens_tui.serve import is_loopback
from tests.lens_tui.helpers import async_test
from tests.lens_tui.serve_helpers import (
    descendants,
    open_raw_session,
    reset,
    serving,
    wait_for,
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_app_process_ends_when_its_browser_vanishes_and_when_the_server_stops():
    with serving() as (server, port):
        first = open_raw_session(port)
        [app] = descendants(server.pid)
        reset(first)  # no close frame: a crashed browser or a dropped network
        assert wait_for(lambda: not alive(app), 5), "app process outlived its websocket"

        second = open_raw_session(port)
        [app] = descendants(server.pid)
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        assert wait_for(lambda: not alive(app), 5), "app process outlived the server"
        second.close()


def test_app_process_ends_on_sigterm_and_when_the_server_is_killed():
    with serving() as (server, port):
        sock = open_raw_session(port)
        [app] = descendants(server.pid)
        os.kill(app, signal.SIGTERM)
        assert wait_for(lambda: not alive(app), 5), "app process ignored SIGTERM"
        sock.close()

        sock = open_raw_session(port)
        [app] = descendants(server.pid)
        server.kill()  # no chance to clean up: the app must notice its stdin closing
        assert wait_for(lambda: not alive(app), 5), "app process outlived a killed server"
        sock.close()


def test_page_uses_relative_urls_and_no_fonts_from_the_internet():
    with serving() as (_server, port):
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        font = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/static/fonts/RobotoMono-VariableFont_wght.ttf", timeout=5
        )
        assert font.status == 200
    assert "localhost" not in page and "127.0.0.1" not in page
    loaded = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"|url\(\s*"?([^")]*)', page)
    urls = [u for pair in loaded for u in pair if u]
    assert urls, "expected the page to load its assets"
    assert all(not re.match(r"^[a-z]+:|^//", u) for u in urls), urls
    assert "fonts.googleapis" not in page and "fonts.gstatic" not in page
    assert "static/fonts/RobotoMono" in page


def test_served_app_is_read_only_unless_allowed():
    assert " browse --read-only" in serve_command_line(())
    assert "--read-only" not in serve_command_line((), allow_collect=True)
    assert serve_command_line(()).startswith("exec ")


@async_test
async def test_read_only_app_has_no_collect_view(tmp_path):
    from lens_tui.app import build_app
    from tests.lens_tui.helpers import write_bundles

    app = build_app(write_bundles(tmp_path), read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        assert not app.query("#collect-view")
        assert not app.query("TabPane#collect")
        assert app._widget("#views").active != "collect"
        assert "collect" not in [spec.id for spec in app.views]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org", "[::]"])
def test_non_loopback_host_is_refused_in_one_line(host):
    result = CliRunner().invoke(cli, ["serve", "--host", host, "--port", "8000"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--allow-remote" in lines[0] and "authentication" in lines[0]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"])
def test_loopback_hosts_are_loopback(host):
    assert is_loopback(host)


def test_allow_remote_warns_about_the_missing_authentication():
    with serving("--host", "0.0.0.0", "--allow-remote") as (server, _port):
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        stderr = server.stderr.read().decode()
    assert "warning:" in stderr and "no authentication" in stderr and "anyone" in stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_headless_chromium_session_ends_when_the_browser_quits():
    with serving() as (server, port), tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",  # keeps headless chromium running on the page
                f"http://127.0.0.1:{port}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            apps = wait_for(lambda: descendants(server.pid), 20)
            assert apps, "the page did not open a session"
        finally:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()
        started = time.monotonic()
        assert wait_for(lambda: not any(alive(a) for a in apps), 5), "app outlived the browser"
        assert time.monotonic() - started < 5
