"""A sha256 over files, remembered by their stat, so a job does not re-read a model's weights
to name them.

A local model dir's revision is the sha256 of its weight files: ~0.35 s for a 95M-parameter
model on every job, which was 2-3% of a small CPU job. The digest is remembered in
`$AUDIOLAKE_CACHE/file-digests.json` under the files' (path, size, mtime_ns, inode): a
rewritten or replaced file changes at least one of them, and then it is read again. The
digest itself is unchanged (the same bytes in the same order), so revisions recorded before
the cache still match.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from lake import atomic, paths

MAX_ENTRIES = 200  # a few models per machine; the oldest entries go first


def digest_file() -> Path:
    return paths.cache_dir() / "file-digests.json"


def sha256_of(files: Sequence[Path]) -> str:
    """sha256 over the files' bytes, one after another in the order given."""
    key = json.dumps([[str(Path(f).resolve()), s.st_size, s.st_mtime_ns, s.st_ino]
                      for f in files for s in [Path(f).stat()]])
    known = _read()
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    known = {k: v for k, v in _read().items() if k != key}  # re-read: another job may have added some
    known[key] = digest.hexdigest()
    try:
        atomic.write_json(dict(list(known.items())[-MAX_ENTRIES:]), digest_file())
    except OSError:  # a read-only cache only costs the next job the same read
        pass
    return known[key]


def _read() -> dict[str, str]:
    try:
        known = json.loads(digest_file().read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) and all(isinstance(v, str) for v in known.values()) else {}
