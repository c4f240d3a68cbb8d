"""Advisory file locks: one writer at a time on a dataset's shards or a backbone name.

`flock` is released by the kernel when the holder dies, so a SIGKILLed job never leaves a
lock behind that a person has to delete. In an S3 lake the lock is a lease object created by
a conditional PUT (`lake.object_lock`, which says what that promises).
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from lake import storage


class Busy(Exception):
    """Another process holds the lock and the caller asked not to wait."""


@contextmanager
def file_lock(path: Path, wait: bool = True, holder: str = "") -> Iterator[None]:
    """Holds an exclusive lock on `path` (created if missing). With `wait=False` a held lock
    raises `Busy` naming what the holder wrote into the file (its pid and command)."""
    if storage.is_object(path):
        from lake.object_lock import object_lock

        with object_lock(path, wait, holder, Busy):
            yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            raise Busy(handle.read().strip() or "another process") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}{': ' + holder if holder else ''}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
