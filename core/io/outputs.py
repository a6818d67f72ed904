"""Check a command's output path before it does any work.

Every writing command (mask, merge, evaluate, collect, index, prune) calls
:func:`check_output` with its ``--out`` and all of its inputs first, so that

- no command ever writes over one of its own inputs (same path, same inode
  through a link, or an existing file inside an input folder such as a
  model's weights or a folder of bundles), and
- a destination that cannot be written (a read-only folder, a path below a
  file, ``/proc``, a name too long for the file system, an existing folder
  where a file is expected) fails at once with one line, instead of after a
  model was loaded and an hour of work was done.

The final write itself stays atomic (temporary file, then rename), and
:func:`output_error` turns an ``OSError`` raised by it into one line as well.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from core.errors import LensError

#: Kernel-provided trees where writing a "file" means something else entirely.
PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_output(
    out: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    *,
    kind: str = "file",
    option: str = "--out",
) -> Path:
    """Refuse ``out`` unless writing it can work and touches none of ``inputs``.

    ``kind`` is ``"file"`` (an existing file is replaced atomically; an existing
    folder is refused), ``"folder"`` (an existing file is refused; whether an
    existing folder is acceptable is the command's own rule) or ``"either"``.
    Inputs that are folders (a model, a folder of bundles) protect every file
    already below them; a new file there is allowed. Returns ``out`` as a ``Path``.
    """
    text = os.fspath(out)  # before Path(), which reads "" as "."
    if not text or text.strip() != text or "\x00" in text:
        raise LensError(f"{option} {text!r}: not a usable path")
    path = Path(text)
    absolute = Path(os.path.abspath(path))
    for name in absolute.parts[1:]:
        if len(os.fsencode(name)) > 255:
            raise LensError(f"{path}: the name {name[:20]}… is longer than 255 bytes")
    resolved = _resolve(absolute)
    for pseudo in PSEUDO_FILESYSTEMS:
        if resolved == pseudo or pseudo in resolved.parents:
            raise LensError(f"{path}: is under {pseudo}, which holds no ordinary files")
    for given in inputs:
        if given is None:
            continue
        _check_not_input(path, resolved, Path(given), option)
    if path.exists() or path.is_symlink():
        if kind == "file" and path.is_dir():
            raise LensError(f"{path}: is a folder; {option} names the file to write")
        if kind == "folder" and not path.is_dir():
            raise LensError(f"{path}: is a file; {option} names a folder")
    _check_parent_writable(path, absolute)
    return path


def output_error(path: str | os.PathLike[str], exc: OSError) -> LensError:
    """A one-line :class:`LensError` for an ``OSError`` met while producing ``path``.

    The file the system call failed on (``exc.filename``) is named when known,
    since it may be a temporary file beside ``path`` or an input being read.
    """
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return LensError(f"{path}: cannot write it: {reason}{where}")


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the path as given
        return path


def _check_not_input(out: Path, resolved: Path, given: Path, option: str) -> None:
    source = _resolve(Path(os.path.abspath(given)))
    same = resolved == source
    if not same and out.exists() and given.exists():
        try:
            same = os.path.samefile(out, given)
        except OSError:
            same = False
    if same:
        raise LensError(f"{out}: is one of this command's inputs; choose another {option}")
    if given.is_dir() and source in resolved.parents and (out.exists() or out.is_symlink()):
        # A new file beside the inputs is fine (a mask next to its bundles); replacing
        # one that is already there could replace an input (a bundle the folder
        # supplies, a model's weights).
        raise LensError(
            f"{out}: already exists inside the input folder {given}; choose another {option}"
        )
    if out.is_dir() and not out.is_symlink() and resolved in source.parents:
        raise LensError(f"{out}: holds the input {given}; choose another {option}")


def _check_parent_writable(path: Path, absolute: Path) -> None:
    """The nearest existing ancestor must be a writable folder (missing ones get created)."""
    parent = absolute.parent
    while not parent.exists():
        if parent.is_symlink():  # a dangling link in the way
            raise LensError(f"{path}: {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise LensError(f"{path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LensError(f"{path}: the folder {parent} is not writable")
