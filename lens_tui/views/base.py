"""How a view observes the app's selection: repaint when shown, stay stale while hidden.

A view class mixes in :class:`SelectionView` and implements
:meth:`~SelectionView.show_selection`. On mount the mixin watches the app's one
``selection`` reactive. Each new value is painted at once if the view is on
screen; a hidden view only remembers it and paints when the app reveals it
(its tab is activated). That keeps a key press as cheap as repainting the one
visible view, however many views there are.

:meth:`~SelectionView.depends_on` names the part of the selection a view
shows, so a change elsewhere (τ for the Ablation view, the layer for the
Matrix) neither repaints it nor marks it stale. A view that computes
something slow can start a worker in ``show_selection``: the selection is
frozen, so handing it to a thread is safe; :meth:`SelectionView.run_on_selection`
does that and delivers the result only while it is still current.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from textual.widget import Widget
from textual.worker import NoActiveWorker, Worker, get_current_worker

from lens_tui.selection import Selection

T = TypeVar("T")
_NEVER = object()  # the key of a view that has painted nothing yet
#: How long a slow job waits for the selection to settle before it starts computing.
SETTLE_S = 0.15


def cancelled(wait: float = 0.0) -> bool:
    """Inside a ``run_on_selection`` job: whether a newer selection has cancelled it.

    Thread workers cannot be stopped, only told; a job checks between its
    stages and returns early. ``wait`` first sleeps that long, so that
    a held key (r + 1 repeated) starts one computation, not one per repeat.
    Outside a worker it is always ``False``.
    """
    try:
        worker = get_current_worker()
    except NoActiveWorker:
        return False
    if wait > 0 and not worker.is_cancelled:
        time.sleep(wait)
    return worker.is_cancelled


class SelectionView:
    """Mixin for a widget that shows the app's :class:`Selection` (list it before the widget)."""

    _selection: Selection | None = None
    _painted_key: object = _NEVER

    # ------------------------------------------------------------------ to implement

    def show_selection(self, selection: Selection) -> None:
        """Paint ``selection``; called only while the view is shown and its key has changed."""
        raise NotImplementedError

    def depends_on(self, selection: Selection) -> object:
        """The part of ``selection`` this view shows (by default all of it)."""
        return selection

    # ------------------------------------------------------------------ machinery

    @property
    def selection(self) -> Selection | None:
        """The latest selection this view was told of (painted or not)."""
        return self._selection

    @property
    def stale(self) -> bool:
        """Whether what is painted lags the selection (true of a hidden view after a change)."""
        if self._selection is None:
            return False
        return self.depends_on(self._selection) != self._painted_key

    def _on_mount(self) -> None:
        # Dispatched beside the view's own on_mount (Textual calls each class's handler).
        assert isinstance(self, Widget)
        self.watch(self.app, "selection", self._selection_changed)  # init: paint now if shown

    def _selection_changed(self, selection: Selection) -> None:
        self._selection = selection
        if self._shown():
            self.reveal()

    def reveal(self) -> None:
        """The view has come on screen: paint the latest selection if it is not painted yet."""
        selection = self._selection
        if selection is None or not self.stale:
            return
        self._painted_key = self.depends_on(selection)
        self.show_selection(selection)

    def run_on_selection(
        self,
        selection: Selection,
        work: Callable[[Selection], T],
        done: Callable[[T], None],
        part: Callable[[Selection], object] | None = None,
        lane: str = "",
    ) -> Worker[None]:
        """Compute ``work(selection)`` in a thread, then call ``done(result)`` on the UI thread.

        For figures too slow for a key press (bootstrap intervals, permutation
        tests). A newer call cancels the older one; a result that arrives after
        the view's part of the selection has changed is dropped, so ``done``
        only ever paints figures of the current selection. ``part`` narrows (or,
        reading the view's own settings, widens) what "changed" means when the
        result depends on less than the view shows: Compare's intervals do not
        depend on the selected layer, so moving it must not drop them.
        A newer call cancels only an older one of the same ``lane``: a view with
        two slow figures of different inputs runs them side by side.
        """
        assert isinstance(self, Widget)
        app = self.app
        part = part or self.depends_on
        key = part(selection)

        def job() -> None:
            result = work(selection)
            if not get_current_worker().is_cancelled:
                app.call_from_thread(deliver, result)

        def deliver(result: T) -> None:
            current = self._selection
            if current is not None and part(current) == key:
                done(result)

        return self.run_worker(
            job, thread=True, exclusive=True, group=f"selection-{id(self)}{lane}"
        )

    def _shown(self) -> bool:
        """Whether this view and every container above it are displayed (its tab is active)."""
        node = self
        while isinstance(node, Widget):
            if not node.display:
                return False
            node = node.parent
        return True
