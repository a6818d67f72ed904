"""The ``?`` help screen: what each view shows and every key, read from the views and bindings."""

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
"""
PALETTE = "`ctrl+p` opens the command palette (set A, B, r or τ by name, switch views).\n"


def view_list(views: list[tuple[str, str]]) -> str:
    """One bullet per view, ``(label, summary)`` in tab order (from each view's ``SUMMARY``)."""
    return "".join(f"* **{label}** — {' '.join(summary.split())}\n" for label, summary in views)


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

    def __init__(
        self, views: list[tuple[str, str]], sections: list[tuple[str, list[Binding]]]
    ) -> None:
        super().__init__()
        self.view_summaries = views
        self.sections = sections

    def compose(self) -> ComposeResult:
        intro = f"{INTRO}\n{view_list(self.view_summaries)}\n{PALETTE}"
        with VerticalScroll(id="help-body"):
            yield Markdown(intro + "\n## Keys\n\n" + key_table(self.sections))
