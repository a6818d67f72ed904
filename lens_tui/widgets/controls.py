"""The control bar: one line naming the selection (A, B, r, τ, layer), kept current by itself."""

from __future__ import annotations

from rich.text import Text

from lens_tui.selection import Selection
from lens_tui.widgets.colors import A_HEX, B_HEX
from lens_tui.widgets.text_strip import TextRows


class ControlBar(TextRows):
    """One line with the current selection: A, B, r, τ, layer.

    It watches the app's ``selection`` like a view does, but is always on
    screen, so it repaints on every change (one line, cut with "…" when
    narrow; never a layout pass).
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.line = Text()

    def on_mount(self) -> None:
        self.watch(self.app, "selection", self.show_selection)

    def show_selection(self, selection: Selection) -> None:
        self.line = selection_line(selection)
        self.refresh()

    def text_rows(self, width: int) -> list[Text]:
        line = self.line.copy()
        line.truncate(max(0, width), overflow="ellipsis")
        return [line]


def selection_line(selection: Selection) -> Text:
    """The bar's text: coloured A and B names, then r/E, τ and layer/(L-1)."""
    if not selection.profiles:
        return Text("no bundles loaded", style="bold yellow")
    a = selection.profile_a
    text = Text(no_wrap=True, overflow="ellipsis")
    if len(selection.models) > 1:  # name the model only when there is a choice (m switches)
        text.append(f"{selection.model} ", style="bold")
        text.append("(m) ", style="dim")
    text.append(" A ", style=f"bold reverse {A_HEX}")
    text.append(f" {selection.label_a} ", style=f"bold {A_HEX}")
    _mark_filtered_out(text, selection, selection.a)
    text.append(" B ", style=f"bold reverse {B_HEX}")
    text.append(f" {selection.label_b} ", style=f"bold {B_HEX}")
    _mark_filtered_out(text, selection, selection.b)
    text.append("r ", style="dim")
    text.append(f"{selection.r}", style="bold")
    text.append(f"/{a.num_experts}  ", style="dim")
    text.append("τ ", style="dim")
    text.append(f"{selection.tau:g}  ", style="bold")
    text.append("layer ", style="dim")
    text.append(f"{selection.layer}", style="bold")
    text.append(f"/{a.num_layers - 1}", style="dim")
    return text


def _mark_filtered_out(text: Text, selection: Selection, index: int) -> None:
    """After A's or B's name: ``⊘`` when the ``/`` filter hides it (it stays A or B)."""
    text.append("⊘  " if not selection.matches(index) else " ", style="yellow")
