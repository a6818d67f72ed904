"""App speed in a real terminal: cold start to the first painted frame, and keypress repaints.

Run by hand (not part of the test suite):

    python benchmarks/bench_app.py                       # cold start on sample_stats/
    python benchmarks/bench_app.py --keys                # + keypress latency, gpt-oss-120b shape
    python benchmarks/make_frontier_bundles.py --out /tmp/frontier --tensors none
    python benchmarks/bench_app.py --frontier /tmp/frontier  # 12 bundles, L=61, E=384, N=5,000

``lens`` runs as the user runs it (the installed console script, or
``python -m lens_tui``) inside a pseudo-terminal of a fixed size. Times are
wall-clock from the moment the process is spawned (or the key is written) to
the last byte of the terminal output that paints the result:

- cold start: until the first frame that shows data (the verdict line) has
  been written; this includes interpreter start-up, imports, loading the
  bundles and computing their signatures.
- keypress: ``+`` changes r, to one not shown before (recompute every card, the
  per-layer table, 13 sparklines and the layer plot; what is on screen
  repaints; the intervals worker of the previous r is computing meanwhile), ``]``
  changes the layer (after ``l`` has brought the table and plot into view),
  ``t`` changes τ;
  "repaint done" is the burst of output that follows the key, up to its last
  byte (a burst ends after 150 ms of silence; the silence is not counted);
  "new value shown" is the first write that contains the new value. Textual
  paints a few cells (the table's scrollbar) one frame after the rest, so
  the two differ by about a frame.

The project's bytecode (``__pycache__``) is written before anything is timed,
as an installed ``lens`` has it: without it (a fresh checkout, or
``PYTHONDONTWRITEBYTECODE`` set) every start compiles ~170 modules first,
which is not what a user's start costs.

Wall-clock times depend on what else the machine runs, so the CPU time the
app process spent (from /proc, user + system) is reported beside them, for
the whole process and for its main (UI) thread alone, without the intervals
worker; the 1-minute load average at the start is printed too.

The keypress bundles are the synthetic gpt-oss-120b-shaped ones of
``benchmarks/bench_core.py`` (L = 36, E = 128, N = 20,000), built on first use.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import make  # noqa: E402

QUIET_S = 0.15
#: Pause before each ``+``: the intervals worker of the previous r is computing by then.
GAP_S = 0.3


def machine_probe_seconds() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine runs right now.

    On the shared 2-core machine the same code's CPU time doubled between
    sittings an hour apart (load average alike); the probe beside each report
    says which state a run was in.
    """
    start = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - start


def compile_bytecode() -> None:
    """Write the ``.pyc`` files of ``core`` and ``lens_tui`` (see the module docstring)."""
    import compileall

    for package in ("core", "lens_tui"):
        compileall.compile_dir(ROOT / package, quiet=1)


def lens_command() -> list[str]:
    script = Path(sys.executable).with_name("lens")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lens_tui"]


class Terminal:
    """``lens ARGS`` in a pseudo-terminal of the given size."""

    def __init__(
        self, args: list[str], size: tuple[int, int], command: list[str] | None = None
    ) -> None:
        """``command`` (default: :func:`lens_command`) runs another checkout's app."""
        command = command or lens_command()
        self.start = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # child
            os.chdir(ROOT)
            env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
            # A fresh state directory per run: the app must start from its defaults
            # (it remembers A, B, r, τ and the view on quit).
            env["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="lens-bench-state-")
            os.execvpe(command[0], [*command, *args], env)
        self.pid, self.fd = pid, fd
        cols, rows = size
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = b""

    def read_until(self, marker: bytes, timeout: float = 30.0) -> float:
        """Read until ``marker`` appears, then to the end of that burst; time of its last byte."""
        deadline = time.perf_counter() + timeout
        seen_at = len(self.output)
        last = time.perf_counter()
        found = False
        while time.perf_counter() < deadline:
            wait = QUIET_S if found else max(0.0, deadline - time.perf_counter())
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                if found:
                    return last
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
            last = time.perf_counter()
            if not found and marker in self.output[max(0, seen_at - len(marker)) :]:
                found = True
                self.marker_at = last
        tail = self.output[seen_at:][-3000:]
        raise TimeoutError(f"did not see {marker!r} within {timeout} s; last output: {tail!r}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the app process has used so far, all threads."""
        return _cpu(f"/proc/{self.pid}/stat")

    def ui_cpu_seconds(self) -> float:
        """CPU time of the app's main thread alone: the UI, without the intervals worker."""
        return _cpu(f"/proc/{self.pid}/task/{self.pid}/stat")

    def drain(self) -> None:
        while select.select([self.fd], [], [], QUIET_S)[0]:
            try:
                self.output += os.read(self.fd, 1 << 16)
            except OSError:
                return

    def press(self, key: bytes, marker: bytes) -> tuple[float, float, float, float]:
        """Seconds from writing ``key`` to the last byte of the repaint that shows ``marker``,
        to the output that first shows ``marker``, and the CPU seconds the app spent
        (all threads, then the UI thread alone) until that last byte."""
        self.drain()
        cpu, ui_cpu = self.cpu_seconds(), self.ui_cpu_seconds()
        sent = time.perf_counter()
        os.write(self.fd, key)
        done = self.read_until(marker)
        spent, ui_spent = self.cpu_seconds() - cpu, self.ui_cpu_seconds() - ui_cpu
        return done - sent, self.marker_at - sent, spent, ui_spent

    def close(self) -> None:
        try:
            os.write(self.fd, b"\x11")  # ctrl+q
            deadline = time.time() + 10
            while time.time() < deadline:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                self.drain()
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        finally:
            os.close(self.fd)


def _cpu(stat: str) -> float:
    """User + system CPU seconds from a /proc ``stat`` file (process or thread)."""
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold_start(
    paths: list[str], size: tuple[int, int], repeats: int
) -> tuple[list[float], list[float]]:
    """Wall-clock seconds to the first frame with data, and the CPU seconds the app used by then."""
    times, cpu = [], []
    for _ in range(repeats):
        term = Terminal(["browse", *paths] if paths else [], size)
        try:
            times.append(term.read_until(b"verdict") - term.start)
            cpu.append(term.cpu_seconds())
        finally:
            term.close()
    return times, cpu


Press = tuple[float, float, float, float]


def keypresses(
    paths: list[str],
    size: tuple[int, int],
    repeats: int,
    experts: int = 128,
    gap_s: float = GAP_S,
) -> dict[str, list[Press]]:
    """Time ``+`` (every press a new r, never one seen before, so nothing comes from a cache),
    then ``]`` and ``t`` / ``T``.

    Each ``+`` comes ``GAP_S`` after the previous repaint: by then the
    previous r's intervals worker has started (it waits 0.15 s for keys to
    settle) and is computing (seconds at these sizes), so the repaint is timed
    while intervals compute, as a user pressing ``+`` a few times a second sees it.
    """
    term = Terminal(["browse", *paths], size)
    result: dict[str, list[Press]] = {"r": [], "layer": [], "tau": []}
    try:
        term.read_until(b"verdict", timeout=120)
        r = experts // 4  # the app's starting r
        for _ in range(repeats):
            r += 1
            time.sleep(gap_s)
            result["r"].append(term.press(b"+", f"r={r}".encode()))
        os.write(term.fd, b"l")  # bring the layer table and plot into view (80x24 scrolls)
        term.drain()
        for layer in range(1, repeats + 1):
            result["layer"].append(term.press(b"]", f"layer {layer}:".encode()))
        taus = ["0.02", "0.01"]
        for i in range(repeats):
            key = b"t" if i % 2 == 0 else b"T"
            result["tau"].append(term.press(key, f"{taus[i % 2]}".encode()))
    finally:
        term.close()
    return result


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
        "n": len(ms),
    }


def report_presses(
    report: dict[str, object], prefix: str, size: str, presses: dict[str, list[Press]]
) -> None:
    for what, times in presses.items():
        name = f"{prefix}_{what}_{size}"
        report[f"{name}_repaint_done"] = summary([done for done, _, _, _ in times])
        report[f"{name}_new_value_shown"] = summary([shown for _, shown, _, _ in times])
        report[f"{name}_cpu_time"] = summary([cpu for _, _, cpu, _ in times])
        report[f"{name}_ui_thread_cpu_time"] = summary([ui for _, _, _, ui in times])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "paths", nargs="*", help="bundles for the cold start (default: sample_stats/)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="80x24", help="terminal COLSxROWS")
    parser.add_argument(
        "--keys", action="store_true", help="also time keypresses on 120b-shaped bundles"
    )
    parser.add_argument(
        "--key-size", default="80x24,160x48", help="terminal sizes, comma-separated"
    )
    parser.add_argument("--key-repeats", type=int, default=20)
    parser.add_argument(
        "--key-gap",
        type=float,
        default=GAP_S,
        help=f"seconds between a repaint and the next + (default {GAP_S}: the previous r's "
        "intervals are computing; longer gaps let them land and paint before the key)",
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lens-bench"))
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument(
        "--frontier",
        type=Path,
        help="a folder of make_frontier_bundles.py bundles (L=61, E=384): cold start and "
        "keypresses on all of them at each --key-size",
    )
    args = parser.parse_args()
    compile_bytecode()
    size = tuple(int(v) for v in args.size.split("x"))
    report: dict[str, object] = {"command": lens_command()[-1]}
    report["load_average_1min"] = os.getloadavg()[0]
    report["machine_probe_s"] = round(machine_probe_seconds(), 3)
    report["cpus"] = os.cpu_count()
    start, cpu = cold_start(args.paths, size, args.repeats)
    report["cold_start_to_first_frame"] = {**summary(start), "size": args.size}
    report["cold_start_cpu_time"] = summary(cpu)
    if args.keys:
        args.dir.mkdir(parents=True, exist_ok=True)
        big = [args.dir / f"{name}_{args.samples}.safetensors" for name in ("a", "b")]
        for seed, path in enumerate(big):
            make(path, args.samples, seed, energy=False)
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        for key_size_text in args.key_size.split(","):
            key_size = tuple(int(v) for v in key_size_text.split("x"))
            big_start, big_cpu = cold_start([str(p) for p in big], key_size, 3)
            report[f"cold_start_120b_shape_{key_size_text}"] = summary(big_start)
            report[f"cold_start_120b_shape_{key_size_text}_cpu_time"] = summary(big_cpu)
            presses = keypresses(
                [str(p) for p in big], key_size, args.key_repeats, gap_s=args.key_gap
            )
            report_presses(report, "keypress", key_size_text, presses)
    if args.frontier is not None:
        frontier = sorted(str(p) for p in args.frontier.glob("*.safetensors"))
        for path in frontier:  # warm the page cache: the bundles are mmap'd, as on a re-open
            subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
        report["frontier_bundles"] = len(frontier)
        for key_size_text in args.key_size.split(","):
            key_size = tuple(int(v) for v in key_size_text.split("x"))
            start, cpu = cold_start(frontier, key_size, args.repeats)
            report[f"cold_start_frontier_{key_size_text}"] = summary(start)
            report[f"cold_start_frontier_{key_size_text}_cpu_time"] = summary(cpu)
            presses = keypresses(
                frontier, key_size, args.key_repeats, experts=384, gap_s=args.key_gap
            )
            report_presses(report, "frontier_keypress", key_size_text, presses)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
