"""The contract between a source module and the shard writer.

A source turns some outside collection (a folder, a Hugging Face dataset, a corpus layout,
the demo generator) into a stream of `SourceItem`s. It does not decode, hash or shard:
the pipeline in `ingest.build` does that once, the same way for every source.
"""
from __future__ import annotations

import os
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
    note: str | None = None  # for the ingest report, e.g. why the track id is not the file's stem

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


@dataclass(frozen=True)
class FileState:
    """What a source fingerprint records of one file without reading it.

    `signature` is size, mtime, ctime and inode. Size and mtime alone miss a rewrite that
    keeps both (`touch -r`, `os.utime`, `rsync --times`, a same-length edit restored by a
    backup tool); the kernel moves ctime on every content or metadata change and no user
    call can set it back, and a file replaced by a rename gets a new inode. `problem` says why
    the file cannot be stat'ed (a dangling symlink, no permission); the source turns it into a
    `Skipped`, and the signature records the problem, so fixing it changes the fingerprint.
    """

    path: Path
    signature: str
    problem: str | None = None


def file_state(path: Path) -> FileState:
    try:
        st = os.stat(path)
    except OSError as err:
        if os.path.islink(path):
            problem = f"dangling symlink to {os.readlink(path)} ({err.strerror or err})"
        else:
            problem = f"cannot stat: {err.strerror or err}"
        return FileState(path, f"missing:{err.errno}", problem)
    return FileState(path, f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}")


@dataclass
class ListedFiles:
    """Audio files a metadata file names (chunk JSON, ranking groups): each checked once, the same
    way in every source. A file named twice is kept at its first mention and the second is
    reported, since two rows for one recording would put the same audio on both sides of a split."""

    first: dict[str, str] = field(default_factory=dict)  # normalised path → where it was first named

    def check(self, path: Path, where: str) -> str | Skipped:
        """The file's format (extension, lower case), or why it cannot be a clip."""
        from ingest.probe import AUDIO_EXTENSIONS  # probe imports numpy/soundfile: only when used

        normal = os.path.normpath(os.path.abspath(path))
        if normal in self.first:
            return Skipped(str(path), f"also {self.first[normal]}; kept there, skipped as {where}")
        self.first[normal] = where
        if not path.is_file():
            return Skipped(str(path), f"audio file not found ({where})")
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in AUDIO_EXTENSIONS:
            return Skipped(str(path), f"not an audio file extension: {path.suffix or '(none)'} ({where})")
        return fmt
