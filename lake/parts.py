"""The one listing of a table's part files: every reader (catalog views, `lake.embeddings`, the
embed engine) asks here, so one bad file or folder is named once and never takes a table down.

A part is a `*.parquet` file at the table's partition depth, under folders named `key=value`
with the keys of `lake.schemas.PARTITIONS` and values that pass `lake.paths.check_name`.
Skipped, each with one warning line on stderr naming it and why:
  * a folder that is not such a partition folder (e.g. `dataset=nl\\n`, written before names
    were checked), and a `.parquet` file outside the partition folders: left where they are,
    since what to do with them is the owner's call;
  * a file whose Parquet footer cannot be read (cut short, garbage) or whose schema lacks the
    table's required columns or types (e.g. a user's COPY of another table): moved to
    `$AUDIOLAKE_ROOT/quarantine/<same path under tables/>`, never deleted, so that the next
    `just embed` / `just ingest` writes a clean part in its place.
Hidden files are never looked at: `lake.atomic` writes `.NAME.*.tmp` siblings, and lock files
are hidden too. A file modified in the last `QUIET_SECONDS` may still be being written by a
tool that does not write atomically (DuckDB's COPY does not): it is skipped but left in place.

Footer checks are remembered by (path, size, mtime_ns) in `$AUDIOLAKE_ROOT/.checked-parts.json`,
so listing 2,000 parts costs their stat calls, not 2,000 footer reads.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lake import atomic, paths, storage
from lake.errors import one_line
from lake.schemas import PARTITIONS, REQUIRED_COLUMNS, TABLES, compatible_type

QUIET_SECONDS = 60
CHECKS_VERSION = 1  # bump when what makes a part acceptable changes: older verdicts are redone
_warned: set[tuple[str, str]] = set()  # one warning per thing per process, however often the lake is listed


def quarantine_dir() -> Path:
    return paths.root() / "quarantine"


def checked_file() -> Path:
    return paths.root() / ".checked-parts.json"


@dataclass
class Listing:
    files: list[Path]   # sorted
    digests: list[str]  # of each file's schema

    @property
    def schemas(self) -> int:
        """How many different schemas the files have: with one, a reader need not union by name."""
        return len(set(self.digests))

    def where(self, keep) -> "Listing":
        kept = [(f, d) for f, d in zip(self.files, self.digests) if keep(f)]
        return Listing([f for f, _ in kept], [d for _, d in kept])


def table_parts(table: str, **partition: str) -> list[Path]:
    """The readable parts of `table`, sorted; `partition` narrows to leading partition keys in
    order, e.g. `table_parts("embeddings", dataset="demo", backbone="logmel")`."""
    return list_table(table, **partition).files


def list_table(table: str, **partition: str) -> Listing:
    keys = PARTITIONS[table]
    if tuple(partition) != keys[:len(partition)]:
        raise ValueError(f"{table} is partitioned by {', '.join(keys)}; got {', '.join(partition)}")
    start = paths.partition_dir(table, **partition)
    if not start.is_dir():
        return Listing([], [])
    checks = _Checks()
    good = {path: digest for path, stat in _walk(start, keys[len(partition):])
            if (digest := checks.accept(table, path, stat)) is not None}
    checks.save()
    files = sorted(good)
    return Listing(files, [good[f] for f in files])


def _walk(directory: Path, keys: tuple[str, ...]) -> list[tuple[Path, object]]:
    """`.parquet` files below `directory` under one partition folder per key, each with its
    stat when the listing gave one (an object store's does: it saves a request per part)."""
    found = []
    try:
        entries = storage.entries(directory)
    except OSError as err:
        _warn(directory, f"cannot be listed ({one_line(err)}): skipped")
        return []
    for name, path, is_dir, stat in entries:
        if name.startswith("."):
            continue
        if is_dir:
            if not keys:
                if any(path.rglob("*.parquet")):
                    _warn(path, "a folder below the partition folders: skipped (move its files up or out)")
                continue
            problem = _partition_problem(name, keys[0])
            if problem:
                _warn(path, f"{problem}: skipped (rename or move the folder)")
            else:
                found += _walk(path, keys[1:])
        elif name.endswith(".parquet"):
            if keys:
                _warn(path, f"a part outside the {keys[0]}=… folders: skipped (move it into one)")
            else:
                found.append((path, stat))
    return found


def _partition_problem(name: str, key: str) -> str | None:
    got, sep, value = name.partition("=")
    if not sep or got != key:
        return f"not a {key}=… partition folder"
    try:
        paths.check_name(key, value)
    except ValueError as err:
        return str(err)
    return None


def schema_problem(table: str, schema: pa.Schema) -> str | None:
    """Why a part with this schema cannot be read as `table`, or None."""
    for name in REQUIRED_COLUMNS[table]:
        if name not in schema.names:
            return f"no column {name!r}: not a part of {table} (columns: {', '.join(schema.names[:8])})"
    for field in TABLES[table]:
        if field.name in schema.names and not compatible_type(schema.field(field.name).type, field.type):
            return f"column {field.name!r} is {schema.field(field.name).type}, {table} needs {field.type}"
    return None


def _digest(schema: pa.Schema) -> str:
    text = schema.to_string(show_field_metadata=False, show_schema_metadata=False)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class _Checks:
    """Verdicts on part files, remembered across processes by (path, size, mtime_ns)."""

    def __init__(self) -> None:
        self.root = paths.root()
        self.file = checked_file()
        self.known: dict[str, list] = {}
        self.changed = False
        try:
            saved = json.loads(self.file.read_text(encoding="utf-8"))
            if saved.get("version") == CHECKS_VERSION:
                self.known = saved["parts"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no cache, or a damaged one: check again

    def accept(self, table: str, path: Path, stat=None) -> str | None:
        """The digest of the part's schema when it can be read as `table`, else None."""
        try:
            stat = stat or path.stat()
        except FileNotFoundError:
            return None  # replaced or removed since it was listed
        key, stamp = str(path.relative_to(self.root)), [stat.st_size, stat.st_mtime_ns]
        known = self.known.get(key)
        if isinstance(known, list) and len(known) == 3 and known[:2] == stamp and isinstance(known[2], str):
            return known[2]
        try:
            schema = pq.read_schema(path)
            problem = schema_problem(table, schema)
        except FileNotFoundError:
            return None
        except (pa.ArrowException, OSError) as err:
            problem = f"not a readable Parquet file ({one_line(err, 120)})"
        if problem is None:
            self.known[key] = [*stamp, _digest(schema)]
            self.changed = True
            return self.known[key][2]
        if time.time() - stat.st_mtime < QUIET_SECONDS:
            _warn(path, f"{problem}; modified in the last {QUIET_SECONDS} s, so it may still be being written: "
                        "skipped and left in place")
        else:
            _quarantine(path, problem)
        return None

    def save(self) -> None:
        if not self.changed:
            return
        # Forget files that are gone, so the cache does not grow with every rewritten part. In an
        # S3 lake that would be one request per part: parts keep their key when rewritten, so the
        # cache grows only with parts that are removed, and keeps them.
        live = (self.known if storage.is_object(self.root)
                else {k: v for k, v in self.known.items() if (self.root / k).is_file()})
        try:
            atomic.write_json({"version": CHECKS_VERSION, "parts": live}, self.file)
        except OSError:
            pass  # a read-only lake is still readable: the checks are just redone next time


def _quarantine(path: Path, problem: str) -> None:
    target = quarantine_dir() / path.relative_to(paths.tables_dir())
    n = 0
    while target.exists():  # an earlier file of the same name is kept too
        n += 1
        target = target.with_name(f"{path.name}.{n}")
    try:
        storage.move(path, target)
    except FileNotFoundError:
        return  # another process moved it first, and said so
    except OSError as err:
        _warn(path, f"{problem}: skipped (could not be moved to quarantine: {one_line(err, 120)})")
        return
    _warn(path, f"{problem}: moved to {target.relative_to(paths.root())}")


def _warn(path: Path, why: str) -> None:
    where = path.relative_to(paths.root()) if path.is_relative_to(paths.root()) else path
    shown = str(where) if str(where).isprintable() else ascii(str(where))[1:-1]
    if (str(path), why) not in _warned:
        _warned.add((str(path), why))
        print(f"warning: {shown}: {why}", file=sys.stderr, flush=True)
