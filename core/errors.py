"""The one exception type the user interfaces turn into a single clear line.

Anything a user can cause (a bad file, a bad argument, a model we cannot
handle) raises :class:`LensError` with a message that already names the file or
value and the problem. The CLI prints ``error: <message>`` and exits non-zero;
the TUI shows it as a notification. Any other exception is a bug.
"""

from __future__ import annotations


class LensError(Exception):
    """A user-facing error whose message is a complete, one-line explanation."""


class BundleError(LensError):
    """A bundle file is missing, unreadable, or does not follow docs/formats.md §Bundle."""
