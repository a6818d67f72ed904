"""The ``?`` help screen: what each view shows and every key, read from the views and bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Markdown

INTRO = """\
# Expert Calibration Lens

Compare calibration datasets of a Mixture-of-Experts model by their router
statistics. Every number comes from the `core` engine and recomputes on each
key: there is no run button.
"""
PALETTE = (
    "`ctrl+p` opens the command palette: switch views, set A, B, r, τ or the layer by name,\n"
    "or type a value: `tau 0.03`, `r 12`, `layer 5`, `b wiki`.\n"
    "\n"
    "`/` filters the bundles by name: the Matrix and Design lists and the `a` / `b` keys\n"
    "offer only the names containing the text (enter keeps the filter, escape clears it).\n"
    "A and B stay as they are when the filter hides them, marked ⊘.\n"
    "\n"
    "Tables sort by any column: `o` the next column, `O` the other way round, or click a\n"
    "header; ▲ / ▼ marks the sort column. Missing values always come last.\n"
)


def view_list(views: list[tuple[str, str]]) -> str:
    """One bullet per view, ``(label, summary)`` in tab order (from each view's ``SUMMARY``)."""
    return "".join(f"* **{label}** — {' '.join(summary.split())}\n" for label, summary in views)


#: Keys that widgets handle themselves (no ``Binding`` of ours), listed so help names them too.
WIDGET_KEYS = [
    Binding("tab", "", "Next panel", tooltip="Move the focus to the next panel or table"),
    Binding("shift+tab", "", "Previous panel", tooltip="Move the focus to the previous panel"),
    Binding("up,down", "", "Move", tooltip="Move the cursor in a table or list"),
    Binding("j,k", "", "Move", tooltip="Down / up in a table or list"),
]


def key_name(key: str) -> str:
    """What a user types: ``>`` for ``greater_than_sign``, ``ctrl+s``, ``space``; commas become `` / ``.

    Textual's binding names are not what anyone types (``greater_than_sign``), so
    help would teach the wrong key without this.
    """
    return " / ".join(format_key(part.strip()) for part in key.split(","))


def key_table(sections: list[tuple[str, list[Binding]]]) -> str:
    """One row per described binding, in the order given (the current view's section first)."""
    lines = ["| where | key | action |", "|---|---|---|"]
    for where, bindings in sections:
        for binding in bindings:
            if not binding.description:
                continue
            key = binding.key_display or key_name(binding.key)
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
