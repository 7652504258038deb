"""Files that appear whole or not at all: write to a temporary file beside the target, then
rename it into place (``os.replace`` is atomic on POSIX within one file system).

Used for blobs downloaded to disk and for a layout's ``index.json``, so that an interrupted copy
or a digest mismatch never leaves a partial file under a content-addressed name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO


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
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.tmp.replace(self.dest)
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
