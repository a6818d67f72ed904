"""The ``?`` help screen: what each view shows and every key, read from the bindings themselves."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

INTRO = """\
# Expert Calibration Lens

Compare calibration datasets of a Mixture-of-Experts model by their router
statistics. Every number comes from the `core` engine and recomputes on each
key: there is no run button.

* **Compare** — dataset **A** vs **B** at budget **r** (experts kept per layer)
  and sparsity threshold **τ**: univariate cards (sparsity, variance, N_eff,
  entropy), bivariate means (JS, Jaccard@r, Pearson of energy, retained mass),
  the verdict (retained mass relative to the best top-r mask ≥ 95 %: a safe
  surrogate), one sparkline per metric across layers, the per-layer table, and the selected layer's expert
  distributions P_l(A) vs P_l(B) with the kept experts marked.
* **Ablation** — Jaccard of the top-r mask vs the number of calibration
  sequences for dataset A: to the final mask and step to step, with the count
  at which the mask converges.
* **Matrix** — mean JS / Jaccard / retained mass for every pair of the ticked
  bundles, heat-coloured.
* **Collect** — run a collection on a model and a dataset; the bundle joins
  the loaded set when it is done.
* **Predict** — `lens evaluate` results beside the bundles of their data:
  predicted retained mass and Jaccard against the measured loss increase per
  mask, the Spearman rank correlation, and the scatter.

`ctrl+p` opens the command palette (set A, B, r or τ by name, switch views).
"""


def key_table(sections: list[tuple[str, list[Binding]]]) -> str:
    lines = ["| where | key | action |", "|---|---|---|"]
    for where, bindings in sections:
        for binding in bindings:
            if not binding.description:
                continue
            key = binding.key_display or binding.key
            key = key.replace("plus", "+").replace("minus", "-").replace("question_mark", "?")
            key = key.replace("left_square_bracket", "[").replace("right_square_bracket", "]")
            description = binding.tooltip or binding.description
            lines.append(f"| {where} | `{key}` | {description} |")
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Modal help; escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close help"),
    ]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(INTRO + "\n## Keys\n\n" + key_table(self.sections))
