"""One way to turn an exception into the single line a user reads.

Errors from deep inside a library (libsndfile, DuckDB, the hub client) arrive as multi-line
text with the useful part at the root of the cause chain; a CLI prints one line that names
the file or key first, then this.
"""
from __future__ import annotations

import re

LIMIT = 300


def one_line(err: BaseException, limit: int = LIMIT) -> str:
    """The error's text on one line, with its root cause when that says something more."""
    root, seen = err, {id(err)}
    while (cause := root.__cause__ or root.__context__) is not None and id(cause) not in seen:
        root = cause
        seen.add(id(cause))
    text = " ".join(str(err).split()) or type(err).__name__
    if root is not err:
        reason = " ".join(str(root).split())
        if reason and reason not in text:
            text += f" ({type(root).__name__}: {reason})"
    # libsndfile names what it opened ("Error opening <_io.BytesIO object at 0x…>: "); the
    # caller names the file, so keep only the reason.
    text = re.sub(r"^Error opening (<[^>]*>|'[^']*'): ", "", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
