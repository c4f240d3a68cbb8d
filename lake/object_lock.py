"""A lock in object storage: a lease object created with a conditional PUT.

S3 has no flock. `If-None-Match: *` makes a PUT fail (412) when the key exists, so of two
writers exactly one creates the lock object. The object holds who holds it (host, pid, the
holder text) and until when (`expires`); while held, a thread renews the lease every third
of `lease_seconds()` (a PUT with `If-Match` on the lock's ETag, so a lock someone else has
taken over is never overwritten). Released by a DELETE with `If-Match`.

A lock whose holder died is taken over (a DELETE with `If-Match`, then the conditional PUT
again) when its lease has run out, or at once when it was held on this host by a process that
no longer exists. Limits: a holder on another machine that is killed blocks the lock until its
lease runs out (default 60 s, `$AUDIOLAKE_LOCK_LEASE`); a holder paused for longer than its
lease (a stopped VM) can lose the lock without knowing until its next renewal fails, which it
reports on stderr. Needs a store with conditional writes (AWS S3 since 2024, MinIO, moto).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from lake.storage import ObjectPath, client

POLL_SECONDS = 0.5


class _Busy(Exception):
    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def lease_seconds() -> float:
    return float(os.environ.get("AUDIOLAKE_LOCK_LEASE", "60"))


def _code(err: Exception) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


def _precondition_failed(err: Exception) -> bool:
    return _code(err) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def _body(holder: str) -> bytes:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "holder": holder,
                       "expires": time.time() + lease_seconds()}).encode()


def _describe(info: dict) -> str:
    return f"pid {info.get('pid')} on {info.get('host')}" + (f": {info['holder']}" if info.get("holder") else "")


def _stale(info: dict) -> bool:
    if time.time() > float(info.get("expires", 0)):
        return True
    if info.get("host") == socket.gethostname():
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
    return False


def _try_acquire(lock: ObjectPath, holder: str) -> str:
    """The new lock's ETag, or raises _Busy naming the holder."""
    s3 = client()
    for _ in range(3):
        try:
            return s3.put_object(Bucket=lock.bucket, Key=lock.key, Body=_body(holder), IfNoneMatch="*")["ETag"]
        except Exception as err:
            if not _precondition_failed(err):
                raise
        try:
            got = s3.get_object(Bucket=lock.bucket, Key=lock.key)
        except s3.exceptions.NoSuchKey:
            continue  # released between our PUT and GET
        try:
            info = json.loads(got["Body"].read())
        except ValueError:
            info = {}  # a damaged lock object: treated as expired
        if not _stale(info):
            raise _Busy(_describe(info))
        try:
            s3.delete_object(Bucket=lock.bucket, Key=lock.key, IfMatch=got["ETag"])
        except Exception as err:
            if not _precondition_failed(err):
                raise
    raise _Busy("another process (the lock changed hands while being taken over)")


@contextmanager
def object_lock(lock: ObjectPath, wait: bool, holder: str, busy: type[Exception]) -> Iterator[None]:
    while True:
        try:
            etag = _try_acquire(lock, holder)
            break
        except _Busy as held:
            if not wait:
                raise busy(held.holder) from None
            time.sleep(POLL_SECONDS)
    state = {"etag": etag}
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, holder, state, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        try:
            client().delete_object(Bucket=lock.bucket, Key=lock.key, IfMatch=state["etag"])
        except Exception as err:
            if not _precondition_failed(err) and _code(err) not in ("NoSuchKey", "404"):
                raise


def _renew(lock: ObjectPath, holder: str, state: dict, stop: threading.Event) -> None:
    while not stop.wait(lease_seconds() / 3):
        try:
            state["etag"] = client().put_object(Bucket=lock.bucket, Key=lock.key, Body=_body(holder),
                                                IfMatch=state["etag"])["ETag"]
        except Exception as err:  # the work goes on; only the lease is in doubt
            print(f"warning: {lock}: lease not renewed ({_code(err) or err}); another process may take the lock",
                  file=sys.stderr, flush=True)
