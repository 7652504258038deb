"""Files that appear whole or not at all: write to a temporary file beside the target, then
rename it into place (``os.replace`` is atomic on POSIX within one file system).

Used for blobs downloaded to disk and for a layout's ``index.json``, so that an interrupted copy
or a digest mismatch never leaves a partial file under a content-addressed name.

Durability: the file is fsynced before the rename and its directory after it, so that after a
crash the name points at the complete new content (POSIX ``rename(2)`` makes the switch atomic;
only an fsync of the directory makes the new directory entry durable). Permissions: ``mkstemp``
creates files readable by their owner only; a committed file gets ``0644`` less the process umask,
as any file the user wrote would, so that other users' tools (skopeo, oras, a web server) can read
a layout we wrote.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

FILE_MODE: Final = 0o644


@functools.cache
def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, racing other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def file_mode() -> int:
    """The mode a committed file gets: ``0644`` less the umask."""
    return FILE_MODE & ~_umask()


def fsync_directory(directory: Path) -> None:
    """Make a rename or new name in ``directory`` durable (no-op where directories can't sync)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".part")
        self.tmp = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fchmod(self._file.fileno(), file_mode())
            os.fsync(self._file.fileno())
            self._file.close()
            self.tmp.replace(self.dest)
        except BaseException:
            self.abort()
            raise
        fsync_directory(self.dest.parent)
        self._done = True

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self._done:
            if exc_type is None:
                self.commit()
            else:
                self.abort()


def write_atomic(dest: Path, data: bytes) -> None:
    with AtomicFile(dest) as f:
        f.write(data)
