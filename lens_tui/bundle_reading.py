"""Reading a bundle's values on first use, and the one line that reports a failure.

The app opens bundles by header only (:class:`core.formats.bundle.CheckedOnFirstRead`)
and reads a bundle's values where it is first used: A and B at start, the
Matrix view's ticked bundles when it is shown. Each place reports a bad file
the same way, so the wording lives here.

Which two bundles the app starts on (:func:`first_pair`) lives here too, so
that ``lens browse`` can start reading them before it imports the app
(:func:`read_ahead`): the two reads (numpy, outside the GIL) then run while
textual and the views are imported, instead of after.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

from core.engine import Profile
from core.errors import LensError
from core.formats.bundle import find_bundles
from lens_tui.selection import Selection
from lens_tui.state import SavedState

#: Bundles :func:`read_ahead` opened and started reading, by file identity, until the
#: app takes them (:func:`open_profile`) or has chosen its pair (:func:`drop_read_ahead`).
_AHEAD: dict[tuple[str, int, int, int], Profile] = {}
_AHEAD_LOCK = threading.Lock()


def failure_line(path: Path, exc: BaseException) -> str:
    """One line for a bundle that could not be read: a LensError says it all itself."""
    if isinstance(exc, LensError):
        return str(exc)
    return f"{path}: {type(exc).__name__}: {exc}"


def read_signature(profile: Profile) -> str | None:
    """Check ``profile``'s values and compute (cache) its signature; the failure line, if any.

    Any exception is a failure, not only :class:`LensError`: an unreadable file
    must not take the app down. A read already under way in another thread
    (:func:`read_ahead`) is joined, not repeated: the bundle's deferred check
    hands its sums over under a lock.
    """
    try:
        profile.prob  # noqa: B018 - computed and cached on the profile
    except Exception as exc:
        return failure_line(profile.bundle.path, exc)
    return None


def bundle_paths(paths: Iterable[Path]) -> list[Path]:
    """The bundle files among files and folders (evaluation ``*.json`` files left out)."""
    return find_bundles([p for p in paths if p.is_dir() or p.suffix != ".json"])


def first_pair(selection: Selection, remembered: SavedState | None) -> Selection:
    """A and B to start on: the remembered ones if loaded, else two bundles of one model.

    A lone bundle of another model given first (``lens browse x sample/``) would
    otherwise open the app on A vs A.
    """
    selection = _start_on_a_pair(selection)
    if remembered is not None:
        selection = _remembered_pair(selection, remembered)
    return selection


def _start_on_a_pair(selection: Selection) -> Selection:
    if not selection.profiles or len(selection.of_model()) > 1:
        return selection
    groups = [selection.of_model(model) for model in selection.models]
    larger = max(groups, key=len)
    if len(larger) < 2:
        return selection
    return selection.replace(a=larger[0], b=larger[1])


def _remembered_pair(selection: Selection, saved: SavedState) -> Selection:
    """A and B as the last run left them, for those of its bundles loaded now."""
    paths = [str(Path(p.bundle.path).resolve()) for p in selection.profiles]
    changes = {
        side: paths.index(wanted) for side in ("a", "b") if (wanted := getattr(saved, side)) in paths
    }
    return selection.replace(**changes) if changes else selection


def read_ahead(paths: Iterable[Path], remembered: SavedState | None) -> None:
    """Open the bundles' headers and start reading the likely A and B, in background threads.

    A guess that costs nothing when wrong: the app still chooses its pair itself
    (with the same :func:`first_pair`), takes these profiles when it opens the
    same files (:func:`open_profile`) and reports any failure itself. Nothing here
    notifies or raises.
    """
    selection = Selection()
    for file in bundle_paths(list(paths)):
        try:
            selection, _ = selection.with_profile(Profile.load(file, defer_value_checks=True))
        except Exception:  # the app reports it when it opens the file
            continue
    if not selection.profiles:
        return
    selection = first_pair(selection, remembered)
    for profile in dict.fromkeys((selection.profile_a, selection.profile_b)):
        identity = _identity(profile.bundle.path)
        if identity is None:
            continue
        with _AHEAD_LOCK:
            _AHEAD[identity] = profile
        threading.Thread(target=read_signature, args=(profile,), daemon=True).start()


def open_profile(path: Path) -> Profile:
    """The bundle at ``path`` opened by header (values checked on first read).

    The profile :func:`read_ahead` opened for the same file, if any, with its
    read under way or done.
    """
    identity = _identity(path)
    with _AHEAD_LOCK:
        ahead = _AHEAD.pop(identity, None) if identity is not None else None
    return ahead if ahead is not None else Profile.load(path, defer_value_checks=True)


def drop_read_ahead() -> None:
    """Forget what :func:`read_ahead` opened and the app did not take (a wrong guess)."""
    with _AHEAD_LOCK:
        _AHEAD.clear()


def _identity(path: Path) -> tuple[str, int, int, int] | None:
    """The file as it is now (a rewritten file is another one), or None if it cannot be seen."""
    try:
        stat = os.stat(path)
        return (os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None
