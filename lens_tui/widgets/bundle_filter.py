"""The ``/`` bar: filter the bundles by name, as ``/`` filters in k9s and lazygit.

Typing narrows, at each key, the bundle lists the views show (the Matrix and
Design pickers) and the bundles ``a`` / ``b`` step through, to the names
containing the text, case-insensitive. Enter keeps the filter (the bar stays,
saying how many bundles it shows); Escape clears it and closes the bar. The
text lives in the app's selection (``Selection.name_filter``), so the views
follow it like any other change.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Label, Static

from lens_tui.messages import SelectionEdited
from lens_tui.selection import Selection


class BundleFilter(Horizontal):
    """One line above the footer: ``/``, the filter text and how many bundles it shows."""

    DEFAULT_CSS = """
    BundleFilter {
        height: 1;
        background: $panel;
        display: none;
    }
    BundleFilter.-open {
        display: block;
    }
    BundleFilter Label {
        width: 2;
        padding: 0 0 0 1;
    }
    BundleFilter Input, BundleFilter Input:focus {
        width: 16;
        height: 1;
        border: none;
        padding: 0;
    }
    BundleFilter #filter-count {
        width: 1fr;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    BINDINGS = [
        Binding("escape", "clear", "Clear filter", tooltip="Clear the bundle filter"),
    ]

    class Closed(Message):
        """The user left the filter field (Enter keeps the filter, Escape cleared it)."""

    _count_shown: tuple | None = None  # what #filter-count shows (plain, style, spans)

    def compose(self) -> ComposeResult:
        yield Label("/")
        yield Input(id="filter-input", placeholder="bundle name")
        yield Static(id="filter-count")

    def on_mount(self) -> None:
        self.watch(self.app, "selection", self.show_selection)

    @property
    def input(self) -> Input:
        return self.query_one("#filter-input", Input)

    def open(self) -> None:
        """Show the bar and put the cursor in the field (its text is the current filter)."""
        self.add_class("-open")
        self.input.focus()

    def show_selection(self, selection: Selection) -> None:
        """Keep the field and the count in step with the selection's filter."""
        if self.input.value != selection.name_filter:
            with self.input.prevent(Input.Changed):
                self.input.value = selection.name_filter
        count = count_text(selection)
        shown = (count.plain, str(count.style), tuple(count.spans))  # Text's == skips its style
        if shown != self._count_shown:
            # Only when it changes: the bar is hidden unless a filter is typed, and
            # refreshing a hidden widget makes Textual re-map every widget on the
            # screen on the next frame (~2 ms of every new r at 160×48).
            self._count_shown = shown
            self.query_one("#filter-count", Static).update(count, layout=False)
        if selection.name_filter:
            self.add_class("-open")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(SelectionEdited(name_filter=event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value:
            self.remove_class("-open")
        self.post_message(self.Closed())

    def on_descendant_blur(self) -> None:
        """Left with Tab or a click and nothing typed: the bar closes as after Escape."""
        if not self.input.value:
            self.remove_class("-open")

    def action_clear(self) -> None:
        self.post_message(SelectionEdited(name_filter=""))
        self.remove_class("-open")
        self.post_message(self.Closed())


def count_text(selection: Selection) -> Text:
    """``3 of 12 bundles shown``, A or B kept though filtered out, then what the keys do.

    The counts come first: at 80 columns the key hints are the part that is cut.
    """
    total = len(selection.profiles)
    if not selection.name_filter:
        return Text(f"all {total} bundles · type to filter by name", style="dim")
    shown = len(selection.shown)
    text = Text(f"{shown} of {total} bundles shown", style="bold" if shown else "bold yellow")
    hidden = [
        side.upper()
        for side in ("a", "b")
        if total and not selection.matches(getattr(selection, side))
    ]
    if hidden:
        text.append(f" · {', '.join(hidden)} kept (filtered out ⊘)", style="yellow")
    text.append(" · enter keeps, esc clears", style="dim")
    return text
