"""Messages that carry work results to the UI thread (posted from thread workers too).

``post_message`` is thread-safe, so a collection running in a thread worker
reports through these rather than touching widgets.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message


class CollectProgressed(Message):
    """A collection run reported progress (a ``core.collect.runner.CollectProgress``)."""

    def __init__(self, progress: object) -> None:
        super().__init__()
        self.progress = progress


class BundleCollected(Message):
    """A collection run finished and wrote this bundle; the app should load it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class SelectionEdited(Message):
    """A view asks the app to change the shared selection (e.g. ``layer=3``, ``ticked=…``).

    Views never assign the app's selection themselves: the app applies the
    change (clamped) and every view sees the new value through its watcher.
    """

    def __init__(self, **changes: object) -> None:
        super().__init__()
        self.changes = changes
