"""WebDataset tar shards: writing samples with their byte offsets, and reading one back.

We write with `tarfile` rather than `webdataset.TarWriter` because the manifest needs each
audio member's data offset, which TarWriter does not expose. The files are plain WebDataset
shards (`<key>.<ext>` + `<key>.json` per sample) and read back with webdataset unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from lake import storage

_BLOCK = tarfile.BLOCKSIZE
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def make_key(track_id: str, taken: set[str]) -> str:
    """A WebDataset key for a track id: ASCII, no dots, unique within the dataset.

    WebDataset groups tar members by the part of the name before the first dot, so
    `blues.00000` and `blues.00001` would silently merge into one sample.
    """
    ascii_id = unicodedata.normalize("NFKD", track_id).encode("ascii", "ignore").decode()
    base = _UNSAFE.sub("_", ascii_id).strip("_")[:96] or "clip"
    key = base
    if key in taken:
        key = f"{base}_{hashlib.sha1(track_id.encode()).hexdigest()[:10]}"
    taken.add(key)
    return key


@dataclass(frozen=True)
class WrittenMember:
    shard: Path
    offset: int
    nbytes: int


class ShardWriter:
    """Writes samples into numbered shards, starting a new one at a size or count cap."""

    def __init__(self, directory: Path, prefix: str, max_bytes: int, max_count: int):
        self.directory = Path(directory)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.paths: list[Path] = []
        self._file: BinaryIO | None = None
        self._offset = 0
        self._count = 0

    def _open_next(self) -> None:
        self._close_current()
        path = self.directory / f"{self.prefix}-{len(self.paths):06d}.tar"
        self.paths.append(path)
        # Unbuffered: headers are small os-level writes and payloads from files go through
        # sendfile, so the kernel's file offset is always where the next member starts.
        self._file = open(path, "wb", buffering=0)
        self._offset = 0
        self._count = 0

    def _add(self, name: str, size: int, write_payload: Callable[[], None]) -> int:
        """Appends one member (ustar header + data + padding); returns the data's offset.

        Written by hand rather than through TarFile.addfile, which copies in 16 KiB pieces
        through a file object; the header itself still comes from tarfile.
        """
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = 0  # identical inputs give byte-identical shards
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
        self._file.write(header)
        write_payload()
        self._file.write(b"\0" * (-size % _BLOCK))
        data_offset = self._offset + len(header)
        self._offset = data_offset + size + (-size % _BLOCK)
        return data_offset

    def _copy_file(self, source: Path, size: int) -> None:
        """Kernel-side copy (sendfile): the bytes never pass through Python."""
        with open(source, "rb") as handle:
            sent = 0
            while sent < size:
                step = os.sendfile(self._file.fileno(), handle.fileno(), sent, size - sent)
                if step == 0:
                    raise OSError(f"{source}: file shrank while being ingested ({sent} of {size} bytes)")
                sent += step

    def write(self, key: str, ext: str, audio: bytes | Path, row: dict, size: int | None = None) -> WrittenMember:
        """Adds a sample; `audio` is the bytes, or a file path copied as `size` bytes."""
        size = len(audio) if isinstance(audio, bytes) else size
        if (
            self._file is None
            or self._count >= self.max_count
            or (self._count > 0 and self._offset + size > self.max_bytes)
        ):
            self._open_next()
        if isinstance(audio, bytes):
            offset = self._add(f"{key}.{ext}", size, lambda: self._file.write(audio))
        else:
            offset = self._add(f"{key}.{ext}", size, lambda: self._copy_file(audio, size))
        meta = json.dumps(row, ensure_ascii=False, default=str).encode()
        self._add(f"{key}.json", len(meta), lambda: self._file.write(meta))
        self._count += 1
        return WrittenMember(self.paths[-1], offset, size)

    def _close_current(self) -> None:
        if self._file is not None:
            # End-of-archive: two zero blocks, then pad to a full 10 KiB record as tar(1) does.
            end = self._offset + 2 * _BLOCK
            self._file.write(b"\0" * (2 * _BLOCK + (-end % tarfile.RECORDSIZE)))
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def close(self) -> list[Path]:
        self._close_current()
        return self.paths


def read_member(shard: Path, offset: int, nbytes: int) -> bytes:
    """One clip's bytes by seeking into its shard: no scan of the tar (in S3, one ranged GET)."""
    with storage.open_read(shard) as handle:
        handle.seek(offset)
        data = handle.read(nbytes)
    if len(data) != nbytes:
        raise OSError(f"{shard}: expected {nbytes} bytes at offset {offset}, got {len(data)}")
    return data
