"""Rich tables for the analysis commands' human-readable output (no math here)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from core import metrics as m
from core.ablation import Ablation
from core.engine import Comparison, StatsReport
from core.matrix import Matrix

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
}


def fmt(value: float | None, key: str = "") -> str:
    """Format one metric value for a table cell; missing values show as an em dash."""
    if value is None:
        return "—"
    if key == "variance":
        return f"{value:.3e}"
    if key in ("sparsity_pct", "n_eff"):
        return f"{value:.1f}"
    if key.startswith("retained_mass"):
        return f"{value:.1%}"
    return f"{value:.4f}"


def _console() -> Console:
    return Console(highlight=False)


def _bundle_line(summary: dict) -> str:
    return (
        f"[bold]{summary['path']}[/]  model={summary['model']}  dataset={summary['dataset']}  "
        f"samples={summary['samples']:,}  tokens={summary['tokens']:,}  "
        f"L={summary['num_layers']}  E={summary['num_experts']}"
    )


def print_stats(report: StatsReport) -> None:
    console = _console()
    doc = report.to_json()
    console.print(_bundle_line(doc["bundle"]))
    table = Table(title=f"univariate metrics (τ = {report.tau:g})")
    table.add_column("layer", justify="right")
    for key in m.UNIVARIATE_KEYS:
        table.add_column(UNIVARIATE_LABELS[key], justify="right")
    for row in doc["layers"]:
        table.add_row(str(row["layer"]), *(fmt(row[k], k) for k in m.UNIVARIATE_KEYS))
    table.add_section()
    table.add_row("mean", *(fmt(doc["mean"][k], k) for k in m.UNIVARIATE_KEYS), style="bold")
    console.print(table)


def print_comparison(result: Comparison, verdict: str) -> None:
    console = _console()
    doc = result.to_json()
    console.print("A: " + _bundle_line(doc["a"]))
    console.print("B: " + _bundle_line(doc["b"]))
    table = Table(title=f"A vs B at r = {result.r} (τ = {result.tau:g})")
    table.add_column("layer", justify="right")
    table.add_column("N_eff A", justify="right")
    table.add_column("N_eff B", justify="right")
    for key in m.BIVARIATE_KEYS:
        table.add_column(BIVARIATE_LABELS[key], justify="right")
    for row in doc["layers"]:
        table.add_row(
            str(row["layer"]),
            fmt(row["a"]["n_eff"], "n_eff"),
            fmt(row["b"]["n_eff"], "n_eff"),
            *(fmt(row[k], k) for k in m.BIVARIATE_KEYS),
        )
    table.add_section()
    ua, ub = doc["univariate_mean"]["a"], doc["univariate_mean"]["b"]
    table.add_row(
        "mean",
        fmt(ua["n_eff"], "n_eff"),
        fmt(ub["n_eff"], "n_eff"),
        *(fmt(doc["mean"][k], k) for k in m.BIVARIATE_KEYS),
        style="bold",
    )
    console.print(table)
    console.print(f"[bold]verdict:[/] {verdict}")


def print_ablation(result: Ablation, threshold: float) -> None:
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


def print_matrix(result: Matrix) -> None:
    console = _console()
    doc = result.to_json()
    titles = {
        "js_divergence": "mean JS divergence (bits)",
        "jaccard": f"mean Jaccard@{result.r}",
        "retained_mass": f"retained mass at r={result.r} (mask from row, mass of column)",
    }
    for key, title in titles.items():
        table = Table(title=title)
        table.add_column("")
        for name in doc["names"]:
            table.add_column(name, justify="right")
        for name, row in zip(doc["names"], doc[key]):
            table.add_row(name, *(fmt(v, key) for v in row))
        console.print(table)
