"""Text from files (dataset and model names, paths, sample text) made safe for a terminal.

A bundle's metadata is whatever its writer put there: ``dataset="[/bold]"``
would break a rich markup string (a traceback, or a table styled by the
file), and ``\\x1b[2J`` or an OSC 52 sequence would clear the screen or write
the user's clipboard. Everything the CLI prints from a file goes through
:func:`shown` (rich markup) or :func:`printable` (plain lines such as
``error: ...``).
"""

from __future__ import annotations

import re

from rich.markup import escape

#: C0 and C1 control characters (ESC, BEL, CSI, OSC, newlines, ...).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """``value`` as one line a terminal shows literally: control characters as ``\\xNN``."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))


def shown(value: object) -> str:
    """``value`` for a rich markup string: literal text, never markup nor terminal escapes."""
    return escape(printable(value))
