"""Rich tables for the analysis commands' human-readable output (no math here)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from core import metrics as m
from core.ablation import Ablation
from core.engine import Comparison, StatsReport
from core.matrix import Matrix
from lens_tui.safe_text import shown

UNIVARIATE_LABELS = {
    "sparsity_pct": "sparsity %",
    "variance": "variance",
    "n_eff": "N_eff",
    "entropy_bits": "entropy (bits)",
}
BIVARIATE_LABELS = {
    "js_divergence": "JS (bits)",
    "jaccard": "Jaccard@r",
    "pearson_energy": "Pearson (energy)",
    "retained_mass_a_to_b": "kept mass A→B",
    "retained_mass_b_to_a": "kept mass B→A",
    "retained_mass_rel_a_to_b": "rel. kept A→B",
    "retained_mass_rel_b_to_a": "rel. kept B→A",
}


def fmt(value: float | None, key: str = "") -> str:
    """Format one metric value for a table cell; missing values show as an em dash."""
    if value is None:
        return "—"
    if key == "variance":
        return f"{value:.3e}"
    if key in ("sparsity_pct", "n_eff"):
        return f"{value:.1f}"
    if key.startswith("retained_mass"):  # absolute and relative (retained_mass_rel_*)
        return f"{value:.1%}"
    return f"{value:.4f}"


def _console() -> Console:
    return Console(highlight=False)


def _bundle_line(summary: dict) -> str:
    return (
        f"[bold]{shown(summary['path'])}[/]  model={shown(summary['model'])}  "
        f"dataset={shown(summary['dataset'])}  "
        f"samples={summary['samples']:,}  tokens={summary['tokens']:,}  "
        f"L={summary['num_layers']}  E={summary['num_experts']}"
    )


def with_interval(text: str, interval: list[float] | None, key: str = "") -> str:
    """``value [lo, hi]`` when an interval is known, the plain value otherwise."""
    if interval is None:
        return text
    return f"{text} [{fmt(interval[0], key)}, {fmt(interval[1], key)}]"


def print_stats(report: StatsReport, ci: dict | None = None) -> None:
    """The univariate table; ``ci`` (a ``StatsCI.to_json()``) adds ``[lo, hi]`` beside each value."""
    console = _console()
    doc = report.to_json()
    console.print(_bundle_line(doc["bundle"]))
    title = f"univariate metrics (τ = {report.tau:g})"
    if ci is not None:
        title += f", {ci['level']:.0%} bootstrap intervals over {ci['replicates']} replicates"
    table = Table(title=title)
    table.add_column("layer", justify="right")
    for key in m.UNIVARIATE_KEYS:
        table.add_column(UNIVARIATE_LABELS[key], justify="right")
    for layer, row in enumerate(doc["layers"]):
        bars = ci["layers"][layer] if ci is not None else {}
        table.add_row(
            str(row["layer"]),
            *(with_interval(fmt(row[k], k), bars.get(k), k) for k in m.UNIVARIATE_KEYS),
        )
    table.add_section()
    bars = ci["mean"] if ci is not None else {}
    table.add_row(
        "mean",
        *(with_interval(fmt(doc["mean"][k], k), bars.get(k), k) for k in m.UNIVARIATE_KEYS),
        style="bold",
    )
    console.print(table)


def print_comparison(
    result: Comparison, verdict: str, ci: dict | None = None, difference: dict | None = None
) -> None:
    """The A-vs-B table; ``ci``/``difference`` (their ``to_json()``) add intervals and the test."""
    console = _console()
    doc = result.to_json()
    console.print("A: " + _bundle_line(doc["a"]))
    console.print("B: " + _bundle_line(doc["b"]))
    title = f"A vs B at r = {result.r} (τ = {result.tau:g})"
    if ci is not None:
        title += f", {ci['level']:.0%} bootstrap intervals over {ci['replicates']} replicates"
    table = Table(title=title)
    table.add_column("layer", justify="right")
    table.add_column("N_eff A", justify="right")
    table.add_column("N_eff B", justify="right")
    for key in m.COMPARE_KEYS:
        table.add_column(BIVARIATE_LABELS[key], justify="right")
    for layer, row in enumerate(doc["layers"]):
        bars = ci["layers"][layer] if ci is not None else {}
        table.add_row(
            str(row["layer"]),
            fmt(row["a"]["n_eff"], "n_eff"),
            fmt(row["b"]["n_eff"], "n_eff"),
            *(with_interval(fmt(row[k], k), bars.get(k), k) for k in m.COMPARE_KEYS),
        )
    table.add_section()
    ua, ub = doc["univariate_mean"]["a"], doc["univariate_mean"]["b"]
    bars = ci["mean"] if ci is not None else {}
    uni = ci["univariate_mean"] if ci is not None else {"a": {}, "b": {}}
    table.add_row(
        "mean",
        with_interval(fmt(ua["n_eff"], "n_eff"), uni["a"].get("n_eff"), "n_eff"),
        with_interval(fmt(ub["n_eff"], "n_eff"), uni["b"].get("n_eff"), "n_eff"),
        *(with_interval(fmt(doc["mean"][k], k), bars.get(k), k) for k in m.COMPARE_KEYS),
        style="bold",
    )
    console.print(table)
    if difference is not None:
        floor = difference["noise_floor"]
        console.print(
            f"permutation test ({difference['permutations']} random splits of A ∪ B): "
            f"JS p = {difference['js_divergence_p']:.3g}, Jaccard p = {difference['jaccard_p']:.3g}; "
            f"noise floor JS {_floor(floor['js_divergence'], 'median', '95th pct')}, "
            f"Jaccard {_floor(floor['jaccard'], 'median', '5th pct')}"
        )
    console.print(f"[bold]verdict:[/] {shown(verdict)}")


def _floor(pair: list[float] | None, first: str, second: str) -> str:
    if pair is None:
        return "—"
    return f"{first} {pair[0]:.3g} / {second} {pair[1]:.3g}"


def print_ablation(result: Ablation, threshold: float, shuffled: dict | None = None) -> None:
    console = _console()
    console.print(_bundle_line(result.profile.bundle.summary()))
    table = Table(title=f"Jaccard@{result.r} vs calibration sequences")
    table.add_column("sequences", justify="right")
    table.add_column("to final", justify="right")
    table.add_column("stepwise", justify="right")
    for count, final, step in zip(result.counts, result.to_final, result.stepwise):
        table.add_row(str(count), fmt(final), fmt(step))
    console.print(table)
    converged = result.converged_at(threshold)
    if converged is None:
        console.print(
            f"the mask has not converged (to-final Jaccard does not stay ≥ {threshold:g} "
            "before the last checkpoint: more data may still change it)"
        )
    else:
        console.print(
            f"[bold]the mask has converged at n = {converged}[/] (to-final Jaccard stays ≥ {threshold:g})"
        )
    if shuffled is not None:
        lo, hi = shuffled["converged_at_range"]
        median = shuffled["converged_at_median"]
        console.print(
            f"over {shuffled['shuffles']} random orders (seed {shuffled['seed']}): converged at "
            f"n = {'not within the data' if median is None else f'{median:g}'} (median), range "
            f"{'—' if lo is None else lo}–{'beyond the data' if hi is None else hi}; "
            f"{shuffled['not_converged']} of {shuffled['shuffles']} orders never converged"
        )


#: The widest a row label of the matrix tables gets (``#12 name``), so columns keep their room.
MATRIX_LABEL_WIDTH = 20


def matrix_column_chunks(count: int, width: int, cell: int) -> list[range]:
    """Split ``count`` matrix columns into runs that fit ``width`` beside the row labels.

    A k × k table of 12 bundles is ~110 columns wide; squeezed into 80 (or a
    pipe, which rich treats as 80) every cell became ``0.…``. Each run is
    printed as its own table with the row labels repeated, so every number is
    whole at any width.
    """
    # Each column: the cell, one space of padding each side and a (blank) divider.
    per = max(1, (width - MATRIX_LABEL_WIDTH - 3) // (cell + 3))
    return [range(start, min(start + per, count)) for start in range(0, count, per)]


def print_matrix(result: Matrix) -> None:
    """One table per figure; columns are numbered (``#3``) and split to fit the terminal."""
    console = _console()
    doc = result.to_json()
    titles = {
        "js_divergence": "mean JS divergence (bits)",
        "jaccard": f"mean Jaccard@{result.r}",
        "retained_mass": f"retained mass at r={result.r} (mask from row, mass of column)",
        "retained_mass_rel": f"relative retained mass at r={result.r} (share of the column's "
        f"best top-{result.r} mass)",
    }
    names = doc["names"]
    labels = [f"#{i + 1} {shown(name)}" for i, name in enumerate(names)]
    for key, title in titles.items():
        cells = [[fmt(v, key) for v in row] for row in doc[key]]
        cell = max(len(c) for row in cells for c in row)
        cell = max(cell, len(f"#{len(names)}"))
        chunks = matrix_column_chunks(len(names), console.width, cell)
        for part, columns in enumerate(chunks):
            heading = title if len(chunks) == 1 else f"{title} [{part + 1}/{len(chunks)}]"
            table = Table(title=heading, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
            table.add_column("", no_wrap=True, max_width=MATRIX_LABEL_WIDTH, overflow="ellipsis")
            for j in columns:
                table.add_column(f"#{j + 1}", justify="right", no_wrap=True, min_width=cell)
            for label, row in zip(labels, cells):
                table.add_row(label, *(row[j] for j in columns))
            console.print(table)
