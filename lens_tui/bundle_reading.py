"""Reading a bundle's values on first use, and the one line that reports a failure.

The app opens bundles by header only (:class:`core.formats.bundle.CheckedOnFirstRead`)
and reads a bundle's values where it is first used: A and B at start, the
Matrix view's ticked bundles when it is shown. Each place reports a bad file
the same way, so the wording lives here.
"""

from __future__ import annotations

from pathlib import Path

from core.engine import Profile
from core.errors import LensError


def failure_line(path: Path, exc: BaseException) -> str:
    """One line for a bundle that could not be read: a LensError says it all itself."""
    if isinstance(exc, LensError):
        return str(exc)
    return f"{path}: {type(exc).__name__}: {exc}"


def read_signature(profile: Profile) -> str | None:
    """Check ``profile``'s values and compute (cache) its signature; the failure line, if any.

    Any exception is a failure, not only :class:`LensError`: an unreadable file
    must not take the app down.
    """
    try:
        profile.prob  # noqa: B018 - computed and cached on the profile
    except Exception as exc:
        return failure_line(profile.bundle.path, exc)
    return None
