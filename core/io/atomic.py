"""The one atomic writer: a file appears under its final name only once it is complete.

Every file the tool writes (bundles, masks, evaluation results, pruned
checkpoint shards, run manifests) goes through :func:`atomic_file`: the bytes
go to a temporary file in the destination folder (same file system, so the
rename is atomic), which is flushed and fsynced, renamed over the target, and
the folder is fsynced so the rename itself survives a crash. Any exception,
KeyboardInterrupt included, removes the temporary file and leaves an existing
target untouched, so a crash or Ctrl-C never leaves a half-written file under
the final name nor litter beside it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from core.errors import LensError


@contextmanager
def atomic_file(
    path: str | os.PathLike[str], *, check: Callable[[Path], None] | None = None
) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` when the block ends without error.

    Streaming writers (checkpoint shards, bundles written block by block) write
    through it directly. ``check``, if given, is called with the temporary
    file's path once it is complete and fsynced, before the rename: a writer
    that must re-read what it wrote (a streamed bundle is validated by loading
    it) raises there, and nothing appears under ``path``.
    """
    path = Path(path)
    refuse_special_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; a bundle or mask is meant to be shared like
        # any file the user writes, so give it the mode open() would (0666 & ~umask).
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def refuse_special_target(path: Path) -> None:
    """Never rename over something that is not a regular file.

    ``os.replace`` would silently swap a device (``/dev/null``), a FIFO or a
    socket for a regular file — as root, breaking the machine for every other
    program — and cannot replace a folder. Writing "to /dev/null" is not a
    request to destroy it, so it is refused with one line instead.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LensError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return  # a dangling link is replaced by the new file, as any writer would
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise LensError(f"{path}: is {kind}; give a file name to write to")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_file`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def current_umask() -> int:
    """The process umask (reading it requires setting it; restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder``; a file system that cannot fsync folders is skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
