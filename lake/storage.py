"""Where the lake's bytes live: a local folder (the default) or a prefix of an S3 bucket.

`$AUDIOLAKE_ROOT=s3://bucket/prefix` puts the whole lake in object storage. Every location
still derives from `lake.paths.root()`; for an S3 root that is an `ObjectPath`, a pure posix
path (joins, parents, names and `relative_to` work as for a local path) whose `str()` is its
`s3://` URI and which answers the few filesystem questions the lake asks (exists, stat,
listing, read, write, unlink). The handful of operations that a local `Path` does through
`os`/`open` go through the functions here, which serve both kinds: the rest of the code never
branches on `s3://`.

Object stores have no rename, so nothing is written to a temporary key: an object becomes
visible in one PUT (or one completed multipart upload), whole or not at all. Files are
written to a local temporary file first and uploaded under their final key (`publish`).

Configuration is the usual AWS environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a
profile, instance role, …), AWS_REGION / AWS_DEFAULT_REGION, and AWS_ENDPOINT_URL (or
AWS_ENDPOINT_URL_S3) for an S3-compatible server (MinIO, Ceph, moto). Reads, listings and
Parquet go through pyarrow's S3 filesystem (built into pyarrow); writes, deletes and the
conditional PUTs of `lake.object_lock` through boto3 (the `scale` extra), imported only for
an S3 lake.
"""
from __future__ import annotations

import fnmatch
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import BinaryIO, Iterator, NamedTuple, Union

import pyarrow.fs as pafs

from lake.errors import one_line

SCHEME = "s3://"


def _strip_scheme(args: tuple) -> tuple:
    # "s3://bucket/key" is held as "/bucket/key": pathlib would fold the "//" into one slash.
    return tuple("/" + a[len(SCHEME):] if isinstance(a, str) and a.startswith(SCHEME) else a for a in args)


class ObjectPath(PurePosixPath):
    """An S3 object or prefix, `s3://bucket/key`; a "folder" is a key prefix, present when some
    object is under it."""

    def __new__(cls, *args):
        return super().__new__(cls, *_strip_scheme(args))

    def __init__(self, *args):  # Python >= 3.12 parses the arguments in __init__
        if hasattr(PurePosixPath, "with_segments"):
            super().__init__(*_strip_scheme(args))

    def __str__(self) -> str:
        # Only the absolute form is a URI; a key relative to another (`relative_to`) is plain.
        text = super().__str__()
        return "s3:/" + text if self.is_absolute() else text

    @property
    def bucket(self) -> str:
        return self.parts[1]

    @property
    def key(self) -> str:
        return "/".join(self.parts[2:])

    @property
    def arrow_path(self) -> str:
        """bucket/key, as pyarrow's S3 filesystem names it."""
        return "/".join(self.parts[1:])

    def _info(self) -> pafs.FileInfo:
        return arrow_fs().get_file_info(self.arrow_path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def stat(self) -> SimpleNamespace:
        info = self._info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"{self}: no such object")
        return _stat(info)

    def read_bytes(self) -> bytes:
        try:
            with arrow_fs().open_input_stream(self.arrow_path) as handle:
                return handle.read()
        except OSError as err:
            raise _not_found(self, err) from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        with _as_os_error(self):
            client().put_object(Bucket=self.bucket, Key=self.key, Body=data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        if not missing_ok and not self.exists():
            raise FileNotFoundError(f"{self}: no such object")
        with _as_os_error(self):
            client().delete_object(Bucket=self.bucket, Key=self.key)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is written under it."""

    def resolve(self, strict: bool = False) -> "ObjectPath":
        return self

    def iterdir(self) -> Iterator["ObjectPath"]:
        for info in _list(self, recursive=False):
            yield self / info.base_name

    def glob(self, pattern: str) -> Iterator["ObjectPath"]:
        """Objects directly under this prefix whose name matches (no `**`)."""
        for info in _list(self, recursive=False):
            if fnmatch.fnmatchcase(info.base_name, pattern):
                yield self / info.base_name

    def rglob(self, pattern: str) -> Iterator["ObjectPath"]:
        for info in _list(self, recursive=True):
            if fnmatch.fnmatchcase(info.base_name, pattern):
                yield ObjectPath("/" + info.path)


LakePath = Union[Path, ObjectPath]


def path(location: str | os.PathLike) -> LakePath:
    """A lake location: `s3://…` (or an ObjectPath) as an ObjectPath, anything else a local Path."""
    if isinstance(location, ObjectPath):
        return location
    if isinstance(location, str) and location.startswith(SCHEME):
        if len(ObjectPath(location).parts) < 2:
            from lake.cli import UsageError

            raise UsageError(f"{location}: name a bucket, e.g. s3://bucket/prefix")
        return ObjectPath(location)
    return Path(location)


def check_root(root: ObjectPath) -> None:
    """One HEAD of the bucket, once per process: a lake whose bucket is missing, unreachable or
    forbidden is refused in one line here, not by a traceback from deep inside a write."""
    _check_bucket(str(root), root.bucket, endpoint(), os.getpid())


@lru_cache(maxsize=None)
def _check_bucket(root: str, bucket: str, endpoint_url: str, pid: int) -> None:
    from lake.cli import UsageError

    where = f"AUDIOLAKE_ROOT={root}" + (f" (endpoint {endpoint_url})" if endpoint_url else "")
    try:
        client().head_bucket(Bucket=bucket)
    except Exception as err:
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        why = {"404": "no such bucket (create it first)", "NoSuchBucket": "no such bucket (create it first)",
               "403": "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the role's policy)",
               }.get(code) or f"{type(err).__name__}: {one_line(err, 160)}"
        if type(err).__name__ == "NoCredentialsError":
            why = "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        elif type(err).__name__ == "EndpointConnectionError":
            why = "cannot reach the S3 endpoint (set AWS_ENDPOINT_URL for an S3-compatible server)"
        raise UsageError(f"{where}: {why}") from None


def is_object(location: object) -> bool:
    return isinstance(location, ObjectPath)


@contextmanager
def _as_os_error(where: ObjectPath) -> Iterator[None]:
    """boto3's errors as the OSError a local write raises (a read-only lake: PermissionError),
    so callers handle both kinds of lake alike."""
    try:
        yield
    except OSError:
        raise
    except Exception as err:
        if not type(err).__module__.startswith(("botocore", "boto3")):
            raise
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        kind = PermissionError if code in ("AccessDenied", "403") else OSError
        raise kind(f"{where}: {one_line(err, 200)}") from None


def _stat(info: pafs.FileInfo) -> SimpleNamespace | None:
    if info.type != pafs.FileType.File:
        return None
    mtime_ns = info.mtime_ns or 0
    return SimpleNamespace(st_size=info.size, st_mtime_ns=mtime_ns, st_mtime=mtime_ns / 1e9)


def _not_found(where: ObjectPath, err: OSError) -> OSError:
    text = str(err)
    if "NoSuchKey" in text or "Path does not exist" in text or "NOT_FOUND" in text.upper():
        return FileNotFoundError(f"{where}: no such object")
    return err


def _list(directory: ObjectPath, recursive: bool) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(directory.arrow_path, recursive=recursive, allow_not_found=True)
    return arrow_fs().get_file_info(selector)


# ---- clients: one of each per process, configured from the AWS environment ------------------

def endpoint_env() -> dict[str, str]:
    """The S3 settings a worker on another machine needs to find the same lake (no secrets)."""
    names = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""


@lru_cache(maxsize=None)
def _arrow_fs(endpoint_url: str, pid: int) -> pafs.S3FileSystem:
    options = {}
    if endpoint_url:
        scheme, _, host = endpoint_url.rstrip("/").partition("://")
        options = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def arrow_fs() -> pafs.S3FileSystem:
    # Per process, like the boto3 client: the SDK's connections do not survive a fork.
    return _arrow_fs(endpoint(), os.getpid())


@lru_cache(maxsize=None)
def _client(endpoint_url: str, pid: int):
    try:
        import boto3
    except ImportError:
        from lake.cli import UsageError

        raise UsageError("an s3:// lake needs boto3: pip install 'audiolake[scale]'") from None
    return boto3.client("s3", endpoint_url=endpoint_url or None)


def client():
    # Per process: a boto3 client is not safe to share across a fork (the loader's processes).
    return _client(endpoint(), os.getpid())


# ---- the operations a local Path does through os, open and shutil --------------------------

class Entry(NamedTuple):
    name: str
    path: LakePath
    is_dir: bool
    stat: SimpleNamespace | None  # an object's size and mtime, from the listing; None for a local file


def entries(directory: LakePath) -> list[Entry]:
    """What is directly in `directory`, sorted by name."""
    if is_object(directory):
        found = [Entry(i.base_name, directory / i.base_name, i.type == pafs.FileType.Directory, _stat(i))
                 for i in _list(directory, recursive=False)]
    else:
        found = [Entry(e.name, Path(e.path), e.is_dir(), None) for e in os.scandir(directory)]
    return sorted(found, key=lambda entry: entry.name)


def open_read(location: LakePath) -> BinaryIO:
    """A seekable binary reader; for an object, reads are ranged GETs."""
    if is_object(location):
        try:
            return arrow_fs().open_input_file(location.arrow_path)
        except OSError as err:
            raise _not_found(location, err) from None
    return open(location, "rb")


def readable(location: LakePath) -> Path | io.BytesIO:
    """What a reader that wants a local file (torch.load) can open: a local path as it is, an
    object's bytes in memory."""
    return io.BytesIO(location.read_bytes()) if is_object(location) else location


def remove_tree(directory: LakePath) -> None:
    """Deletes a folder and everything under it; a missing one is no error."""
    if is_object(directory):
        if directory.key:  # never a whole bucket
            arrow_fs().delete_dir_contents(directory.arrow_path, missing_dir_ok=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def move(source: LakePath, target: LakePath) -> None:
    """Renames a file; an object is copied then deleted (the store has no rename)."""
    if is_object(source):
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such object")
        with _as_os_error(target):
            client().copy_object(Bucket=target.bucket, Key=target.key,
                                 CopySource={"Bucket": source.bucket, "Key": source.key})
        source.unlink(missing_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)


def publish(local_file: Path, target: ObjectPath) -> None:
    """Uploads a finished local file under its final key: one PUT, or a multipart upload whose
    object appears only when it completes. Readers see the old object or the new, whole."""
    with _as_os_error(target):
        client().upload_file(str(local_file), target.bucket, target.key)


def upload_tree(local_dir: Path, target: ObjectPath) -> None:
    for file in sorted(local_dir.rglob("*")):
        if file.is_file():
            publish(file, target / file.relative_to(local_dir).as_posix())


@contextmanager
def local_folder(target: LakePath, prefix: str = "audiolake-") -> Iterator[Path]:
    """A local folder to write `target`'s files into: `target` itself when it is local, else a
    temporary folder whose files the caller uploads (`upload_tree`) and which is then removed."""
    if not is_object(target):
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---- DuckDB ------------------------------------------------------------------------------

def attach(con, root: LakePath) -> None:
    """Lets `con` read `s3://` paths of an S3 lake. DuckDB's own S3 reader is its httpfs
    extension, which is downloaded on first use and cannot be installed offline; pyarrow's S3
    filesystem (wrapped for fsspec) serves the same reads without it."""
    if is_object(root):
        con.register_filesystem(_duckdb_fs())


@lru_cache(maxsize=None)
def _duckdb_fs_for(endpoint_url: str, pid: int):
    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3ThroughArrow(ArrowFSWrapper):
        protocol = ("s3",)  # DuckDB hands the fsspec filesystem every path of its protocol

    return S3ThroughArrow(_arrow_fs(endpoint_url, pid))


def _duckdb_fs():
    return _duckdb_fs_for(endpoint(), os.getpid())
