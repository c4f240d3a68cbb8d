"""The contract between a source module and the shard writer.

A source turns some outside collection (a folder, a Hugging Face dataset, a corpus layout,
the demo generator) into a stream of `SourceItem`s. It does not decode, hash or shard:
the pipeline in `ingest.build` does that once, the same way for every source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Metadata columns the seeds need; typed in lake.schemas.TRACKS_METADATA. Any other key a
# source puts in `meta` is kept as an extra column, never dropped.
KNOWN_META = (
    "split", "label", "culture", "affect_label", "speaker_id", "group_id",
    "score", "rank", "text", "terms", "title",
)


@dataclass
class SourceItem:
    """One clip as a source sees it: exactly one of `path` (read lazily) or `data`."""

    track_id: str
    format: str  # file extension without the dot, lower case: wav, flac, ogg, mp3, m4a, ...
    source: str  # where it came from (path, hub id + index), shown in reports
    path: Path | None = None
    data: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError(f"{self.source}: a SourceItem needs exactly one of path or data")

    def read(self) -> bytes:
        return self.data if self.data is not None else Path(self.path).read_bytes()


class SourceError(Exception):
    """A source cannot be read at all (missing folder, bad metadata file, no network).

    The message is one line for the user: what is wrong, with which file/row, what to do.
    """


@dataclass
class Skipped:
    """An entry the source could see but not turn into a clip (missing file, bad row).

    Sources yield these instead of dropping rows, so the ingest report lists every one.
    """

    source: str
    reason: str
