"""Audio for the model: clips read by byte range from their shards, decoded, mixed to mono,
resampled and cropped or chunked, in DataLoader worker processes so the model never waits.

The unit of work is a batch of clips of similar length (planned from `duration_s` in the
manifest before anything is decoded), so workers hand over whole batches in a fixed order:
the same plan always yields the same batches, which is what makes a resumed job bitwise
equal to an uninterrupted one.

A clip that cannot be used fails in one of two ways, and they are kept apart because only
one may be remembered: its own bytes do not decode (or decode to NaN), which no retry
changes; or its shard could not be read just now (gone after re-ingests, a short read),
which says nothing about the clip and is tried again by the next run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soxr
import torch

from ingest.shards import read_member
from lake.audio import decode, to_mono
from lake.errors import one_line

MIN_CHUNK_FRACTION = 0.25  # a trailing chunk shorter than this share of max_seconds is dropped


@dataclass(frozen=True)
class Clip:
    track_id: str
    sha256: str
    shard: str      # relative to the lake root
    offset: int
    nbytes: int
    duration_s: float


@dataclass
class Decoded:
    clip: Clip
    chunks: list[np.ndarray]   # mono float32 at the backbone's rate; empty when a failure is set
    error: str | None = None   # the clip's own audio is unusable: remembered, never retried
    unread: str | None = None  # the job could not read or prepare it now: retried by the next run


class ClipAudioError(ValueError):
    """The clip's own samples are unusable (no frames, NaN or Inf)."""


def prepare(samples: np.ndarray, rate: int, target_rate: int, max_seconds: float,
            chunking: Literal["crop", "mean"]) -> list[np.ndarray]:
    mono = np.ascontiguousarray(to_mono(samples), dtype=np.float32)
    if rate != target_rate:
        mono = soxr.resample(mono, rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    if not np.isfinite(mono).all():
        raise ClipAudioError("decoded samples contain NaN or Inf")
    limit = max(1, int(round(max_seconds * target_rate)))
    if chunking == "crop" or len(mono) <= limit:
        return [mono[:limit]]
    chunks = [mono[start:start + limit] for start in range(0, len(mono), limit)]
    if len(chunks) > 1 and len(chunks[-1]) < MIN_CHUNK_FRACTION * limit:
        chunks.pop()
    return chunks


class BatchDataset(torch.utils.data.Dataset):
    """Item i is batch i of the plan, decoded; a clip that fails carries its error instead."""

    def __init__(self, root: Path, batches: list[list[Clip]], target_rate: int,
                 max_seconds: float, chunking: Literal["crop", "mean"]):
        self.root, self.batches = root, batches
        self.target_rate, self.max_seconds, self.chunking = target_rate, max_seconds, chunking

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> list[Decoded]:
        return [self.one(clip) for clip in self.batches[index]]

    def one(self, clip: Clip) -> Decoded:
        try:
            data = read_member(self.root / clip.shard, clip.offset, clip.nbytes)
        except OSError as err:
            return Decoded(clip, [], unread=one_line(err))
        # crop needs only the first max_seconds (plus a little for the resampler's edge)
        limit = self.max_seconds + 0.1 if self.chunking == "crop" else None
        try:
            samples, rate, _ = decode(data, limit)
        except (MemoryError, ImportError) as err:  # this machine, not these bytes
            return Decoded(clip, [], unread=f"decoding failed here: {one_line(err)}")
        except Exception as err:  # any decoder error on these bytes is the clip's, not the job's
            return Decoded(clip, [], error=f"decode failed: {one_line(err)}")
        if samples.size == 0:
            return Decoded(clip, [], error="decode failed: no audio frames")
        try:
            chunks = prepare(samples, rate, self.target_rate, self.max_seconds, self.chunking)
        except ClipAudioError as err:
            return Decoded(clip, [], error=f"decode failed: {err}")
        except Exception as err:  # resampling or chunking broke: not a fact about the clip's audio
            return Decoded(clip, [], unread=f"preparing its audio failed: {one_line(err)}")
        return Decoded(clip, chunks)


def keep_as_is(batch: list[Decoded]) -> list[Decoded]:
    """collate_fn: batches are already formed; the default would turn arrays into tensors."""
    return batch


def plan_batches(clips: list[Clip], batch_size: int, max_seconds: float) -> list[list[Clip]]:
    """Clips of similar (cropped) length together, so padding inside a batch stays small."""
    ordered = sorted(clips, key=lambda c: (min(c.duration_s, max_seconds), c.offset))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def loader(dataset: BatchDataset, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=keep_as_is,
        prefetch_factor=4 if workers else None, persistent_workers=False,
    )
