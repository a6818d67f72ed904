"""Two versions of the app side by side, key by key: how much faster a new r repaints.

Run by hand (not part of the test suite):

    python benchmarks/bench_keys_ab.py 81e568d            # that commit against this checkout
    python benchmarks/bench_keys_ab.py 81e568d --keys 40 --gap 2

On a shared machine the same code's speed drifts by up to 2× within minutes,
so two versions timed one after the other can compare states of the machine
rather than the code. Here both run at once, each in its own pseudo-terminal
(``benchmarks/bench_app.py``'s), and ``+`` is pressed in one, then the other,
alternately first: every pair of presses meets the same state of the machine.
The report gives each version's times to the new value on screen and to the
end of its repaint and its UI thread's CPU time (median, p90, max), and the median of the
per-press ratios (this checkout over the other), the figure to quote.

The other version is checked out with ``git worktree`` into a temporary
folder, removed at the end. Bundles: the gpt-oss-120b-shaped pair of
``bench_app.py --keys`` (L = 36, E = 128, N = 20,000), built on first use.
Each press is a new r, ``--gap`` seconds after the previous repaint (0.3:
the previous r's intervals are computing, as in ``bench_app.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_app import (  # noqa: E402
    GAP_S,
    Terminal,
    compile_bytecode,
    machine_probe_seconds,
    summary,
)
from benchmarks.bench_core import make  # noqa: E402


def app_command(tree: Path) -> list[str]:
    """The app of the checkout at ``tree`` (its own ``core`` and ``lens_tui``)."""
    start = (
        f"import sys; sys.path.insert(0, {str(tree)!r}); sys.argv = ['lens', *sys.argv[1:]]; "
        "from lens_tui.cli import main; main()"
    )
    return [sys.executable, "-c", start]


def interleaved_presses(
    trees: list[Path], paths: list[str], size: tuple[int, int], presses: int, gap_s: float
) -> dict[Path, list[tuple[float, float, float, float]]]:
    """``presses`` new r's in each app, alternating which goes first."""
    terms = [Terminal(["browse", *paths], size, app_command(tree)) for tree in trees]
    result: dict[Path, list[tuple[float, float, float, float]]] = {tree: [] for tree in trees}
    try:
        for term in terms:
            term.read_until(b"verdict", timeout=120)
        r = 128 // 4  # the app's starting r
        for press in range(presses):
            r += 1
            order = list(zip(trees, terms))
            for tree, term in order if press % 2 == 0 else order[::-1]:
                time.sleep(gap_s)
                result[tree].append(term.press(b"+", f"r={r}".encode()))
    finally:
        for term in terms:
            term.close()
    return result


def summaries(presses: list[tuple[float, float, float, float]]) -> dict[str, dict[str, float]]:
    """Median, p90 and max of each time of the presses (``bench_app.py``'s summary)."""
    done, shown, _, ui = zip(*presses)
    return {
        "new_value_shown": summary(list(shown)),
        "repaint_done": summary(list(done)),
        # /proc counts CPU time in 10 ms ticks: the mean over presses resolves finer.
        "ui_thread_cpu_time": {
            **summary(list(ui)),
            "mean_ms": round(1000 * statistics.mean(ui), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("other", help="the git revision to compare this checkout with")
    parser.add_argument("--keys", type=int, default=30, help="presses of + in each app")
    parser.add_argument("--gap", type=float, default=GAP_S, help="seconds before each press")
    parser.add_argument("--size", default="160x48", help="terminal COLSxROWS")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/lens-bench"))
    args = parser.parse_args()
    compile_bytecode()
    args.dir.mkdir(parents=True, exist_ok=True)
    paths = [args.dir / f"{name}_20000.safetensors" for name in ("a", "b")]
    for seed, path in enumerate(paths):
        make(path, 20_000, seed, energy=False)
    size = tuple(int(v) for v in args.size.split("x"))
    other = Path(tempfile.mkdtemp(prefix="lens-ab-")) / "tree"
    added = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), args.other],
        capture_output=True,
        text=True,
    )
    if added.returncode:
        other.parent.rmdir()  # the empty folder made for it above
        last = (added.stderr.strip().splitlines() or ["git worktree add failed"])[-1]
        sys.exit(f"bench_keys_ab: cannot check out {args.other!r}: {last}")
    try:
        report: dict[str, object] = {"other": args.other, "gap_s": args.gap, "size": args.size}
        report["machine_probe_s"] = round(machine_probe_seconds(), 3)
        presses = interleaved_presses(
            [other, ROOT], [str(p) for p in paths], size, args.keys, args.gap
        )
        report[args.other] = summaries(presses[other])
        report["this checkout"] = summaries(presses[ROOT])
        ratios = [mine[1] / theirs[1] for theirs, mine in zip(presses[other], presses[ROOT])]
        report["ratio_this_over_other_median"] = round(statistics.median(ratios), 2)
        print(json.dumps(report, indent=2))
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=True
        )
        other.parent.rmdir()


if __name__ == "__main__":
    main()
