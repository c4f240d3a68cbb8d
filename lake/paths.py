"""Every location derives from one root, `$AUDIOLAKE_ROOT` (default `./data`): a local folder,
or `s3://bucket/prefix` for a lake in object storage (`lake.storage`)."""
from __future__ import annotations

import os
import re
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
MAX_NAME = 100  # a part file name adds ~60 characters; most filesystems stop at 255


def root() -> Path:
    # Read at call time, not import time, so tests and notebooks can point at another lake.
    location = os.environ.get("AUDIOLAKE_ROOT", "data")
    if location.startswith("s3://"):
        from lake import storage  # pyarrow's S3 filesystem: imported only for an S3 lake

        lake = storage.path(location)  # an ObjectPath: see lake.storage
        storage.check_root(lake)
        return lake
    return Path(location).resolve()


def tables_dir() -> Path:
    return root() / "tables"


def table_dir(table: str) -> Path:
    return tables_dir() / table


def partition_dir(table: str, **partition: str) -> Path:
    path = table_dir(table)
    for key, value in partition.items():
        path = path / f"{key}={value}"
    return path


def shards_dir(dataset: str) -> Path:
    return root() / "shards" / dataset


def reports_dir(dataset: str) -> Path:
    return root() / "reports" / dataset


def runs_dir() -> Path:
    return root() / "runs"


def catalog_file() -> Path:
    return root() / "lake.duckdb"


def cache_dir() -> Path:
    """Downloaded weights are shared by every lake on the machine, so they live outside the root."""
    return Path(os.environ.get("AUDIOLAKE_CACHE", Path.home() / ".cache" / "audiolake"))


def check_name(kind: str, value: str) -> str:
    """Dataset and backbone names become directory names and hive partition values."""
    # fullmatch, not match with `$`: `$` also matches before a trailing newline.
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise ValueError(f"{kind}={str(value)[:40]!r}…: a name is at most {MAX_NAME} characters")
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{kind}={value!r} is not a valid name: use letters, digits, '_' and '-' "
            "(it becomes a directory and a partition value)"
        )
    return value
