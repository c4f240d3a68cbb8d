"""Decode-checking in worker processes, in source order, with bounded memory.

Workers decode and hash (the CPU-bound part); the parent only copies bytes into shards. Items go out in chunks to amortise inter-process overhead, and at
most `window` chunks are in flight so a generator source (demo, hub) is never drained into
memory ahead of the writer.
"""
from __future__ import annotations

import hashlib
import io
import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Literal

import numpy as np
import soundfile as sf

from lake.audio import decode
from ingest.probe import AudioInfo, BadAudio, probe
from ingest.source import SourceItem, Skipped


@dataclass
class Checked:
    info: AudioInfo | None = None
    reason: str | None = None
    sha256: str | None = None  # of the bytes to store (the transcoded ones when transcoding)
    nbytes: int = 0            # how many bytes were checked: the shard writer copies exactly these
    transcoded: bytes | None = None  # FLAC bytes when transcode=flac


def to_flac(data: bytes) -> bytes:
    audio, rate, precision = decode(data)
    subtype = "PCM_16" if precision in ("PCM_16", "PCM_S8", "PCM_U8", "lossy") else "PCM_24"
    if audio.shape[1] > 8:
        raise BadAudio(f"cannot transcode {audio.shape[1]} channels to FLAC (max 8)")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), rate, format="FLAC", subtype=subtype)
    return buffer.getvalue()


def _hash_file(path: Path) -> tuple[str, int]:
    """sha256 and size in one streaming pass: a long recording is never held in memory."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# Files up to this size are read once into memory (fastest for the common short clip); larger
# ones (long recordings) are hashed in a streaming pass and decoded in place, never held whole.
IN_MEMORY_MAX_BYTES = 64 << 20


def _is_large(item: SourceItem) -> bool:
    try:
        return item.path is not None and Path(item.path).stat().st_size > IN_MEMORY_MAX_BYTES
    except OSError:
        return False  # the read below reports it


def check_one(item: SourceItem, transcode: str) -> Checked:
    if _is_large(item) and (transcode == "none" or item.format == "flac"):
        try:
            sha, size = _hash_file(item.path)
        except OSError as err:
            return Checked(reason=f"cannot read: {err.strerror or err}")
        try:
            return Checked(info=probe(Path(item.path), item.format), sha256=sha, nbytes=size)
        except BadAudio as err:
            return Checked(reason=str(err))
    try:
        data = item.read()
    except OSError as err:
        return Checked(reason=f"cannot read: {err.strerror or err}")
    try:
        info = probe(data, item.format)
        if transcode == "flac" and item.format != "flac":
            flac = to_flac(data)
            return Checked(info=info, sha256=hashlib.sha256(flac).hexdigest(), nbytes=len(flac), transcoded=flac)
        return Checked(info=info, sha256=hashlib.sha256(data).hexdigest(), nbytes=len(data))
    except BadAudio as err:
        return Checked(reason=str(err))


def _check_chunk(chunk: list[SourceItem], transcode: str) -> list[Checked]:
    return [check_one(item, transcode) for item in chunk]


def _chunks(items: Iterable[SourceItem | Skipped], size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def checked_items(
    items: Iterable[SourceItem | Skipped],
    workers: int,
    transcode: Literal["none", "flac"] = "none",
    chunk_size: int = 16,
) -> Iterator[tuple[SourceItem | Skipped, Checked | None]]:
    """Yields (item, result) in source order; `Skipped` entries pass through with None."""
    if workers <= 1:
        for item in items:
            yield item, None if isinstance(item, Skipped) else check_one(item, transcode)
        return
    # forkserver: workers start from a clean interpreter, not a fork of a threaded parent.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ingest.check"])  # workers fork with decoders imported
    window = workers * 4
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[tuple[list, Future]] = deque()
        for chunk in _chunks(items, chunk_size):
            clips = [item for item in chunk if not isinstance(item, Skipped)]
            pending.append((chunk, pool.submit(_check_chunk, clips, transcode)))
            if len(pending) >= window:
                yield from _pair(*pending.popleft())
        while pending:
            yield from _pair(*pending.popleft())


def _pair(chunk: list, future: Future) -> Iterator[tuple[SourceItem | Skipped, Checked | None]]:
    results = iter(future.result())
    for item in chunk:
        yield item, None if isinstance(item, Skipped) else next(results)
