"""``lens`` (no arguments), ``lens browse`` and ``lens serve``, and the torch-free browsing path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lens_tui.app import LensApp
from lens_tui.cli import cli
from lens_tui.commands import default as default_module
from tests.lens_tui.helpers import write_bundles

ROOT = Path(__file__).resolve().parents[2]


def capture_runs(monkeypatch) -> list[LensApp]:
    """Replace ``LensApp.run`` so a command's app is recorded instead of taking the terminal."""
    started: list[LensApp] = []
    monkeypatch.setattr(LensApp, "run", lambda self, *a, **k: started.append(self))
    return started


def test_browse_opens_the_app_on_the_given_files_and_folders(tmp_path, monkeypatch):
    paths = write_bundles(tmp_path / "b")
    started = capture_runs(monkeypatch)
    result = CliRunner().invoke(cli, ["browse", str(paths[0].parent), str(paths[1])])
    assert result.exit_code == 0, result.output
    assert [app._initial_paths for app in started] == [[paths[0].parent, paths[1]]]


def test_lens_without_arguments_opens_sample_stats(tmp_path, monkeypatch):
    folder = tmp_path / "sample_stats"
    write_bundles(folder)
    monkeypatch.chdir(tmp_path)
    started = capture_runs(monkeypatch)
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0, result.output
    assert started[0]._initial_paths == [folder] and started[0]._notice is None


def test_lens_without_sample_bundles_opens_with_a_notice_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(default_module, "default_sample_dir", lambda: tmp_path / "sample_stats")
    started = capture_runs(monkeypatch)
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0, result.output
    assert started[0]._initial_paths == []
    assert "no sample bundles" in started[0]._notice and "lens browse" in started[0]._notice


class FakeServer:
    made: list[FakeServer] = []

    def __init__(self, command: str, *, host: str, port: int, title: str) -> None:
        self.command, self.host, self.port, self.title = command, host, port, title
        self.served = False
        FakeServer.made.append(self)

    def serve(self) -> None:
        self.served = True


def test_serve_binds_localhost_unless_told_and_runs_browse_per_session(tmp_path, monkeypatch):
    import lens_tui.serve

    paths = write_bundles(tmp_path / "b")
    monkeypatch.setattr(lens_tui.serve, "LensServer", FakeServer)
    FakeServer.made.clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["serve", str(paths[0].parent)]).exit_code == 0
    remote = ["serve", str(paths[0]), "--host", "0.0.0.0", "--port", "9000", "--allow-remote"]
    assert runner.invoke(cli, remote).exit_code == 0
    first, second = FakeServer.made
    assert (first.host, first.port, first.served) == ("localhost", 8000, True)
    assert first.command.startswith("exec ")
    assert first.command.endswith(f"-m lens_tui browse --read-only {paths[0].parent.resolve()}")
    assert (second.host, second.port) == ("0.0.0.0", 9000)


BROWSE_WITHOUT_TORCH = """
import json, sys
from lens_tui.app import LensApp

after_import = sorted(m for m in ("torch", "transformers") if m in sys.modules)
seen = {}

async def pilot(p):
    await p.pause()
    await p.press("2", "3", "4", "1", "plus", "b")
    await p.pause()
    seen["labels"] = p.app.labels
    seen["running"] = sorted(m for m in ("torch", "transformers", "textual") if m in sys.modules)
    p.app.exit()

LensApp.run = lambda self, _run=LensApp.run: _run(self, headless=True, size=(80, 24), auto_pilot=pilot)
from lens_tui.cli import cli
try:
    cli(["browse", sys.argv[1]], prog_name="lens")
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps({"after_import": after_import, **seen}))
"""


def test_browsing_never_imports_torch(tmp_path):
    """`lens browse` in a fresh interpreter: no torch after importing the app, nor while it runs."""
    folder = tmp_path / "b"
    write_bundles(folder)
    out = subprocess.run(
        [sys.executable, "-c", BROWSE_WITHOUT_TORCH, str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["after_import"] == []
    assert result["running"] == ["textual"]  # the app really ran, and torch never loaded
    assert result["labels"] == ["alpha", "beta", "gamma"]
