"""A directory of audio files, labelled by a metadata CSV or by sub-folder names.

Layout, either of:
- `DIR/metadata.csv` with at least `track_id, audio_path` (seed 000's `track_id, culture,
  audio_path`, plus optional `label, affect_label, speaker_id, ...`; any other column is kept).
  `audio_path` is relative to the CSV's folder, or absolute. A `terms` column holds terms
  separated by `|` or `;`.
- no CSV: every audio file under DIR (recursively) is a clip; its track id is its path
  relative to DIR without the extension, and files inside a sub-folder get that folder's name
  as `label` (GTZAN's `genres/blues/blues.00000.wav` layout).

Formats: wav, flac, ogg, mp3, aiff (libsndfile) and m4a/aac/mp4 (FFmpeg via PyAV). Files
with other extensions are skipped unread. License: whatever the user's files
carry; nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from ingest.probe import AUDIO_EXTENSIONS
from ingest.source import SourceError, SourceItem, Skipped
from lake.errors import one_line

if TYPE_CHECKING:
    import polars as pl

REQUIRED_COLUMNS = ("track_id", "audio_path")


@dataclass
class Config:
    path: Path
    metadata: Path | None = None  # default: DIR/metadata.csv when it exists
    labels: Literal["auto", "metadata", "folders", "none"] = "auto"

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if not self.path.is_dir():
            raise SourceError(f"path={self.path}: not a directory")
        if self.metadata is None and (self.path / "metadata.csv").is_file():
            self.metadata = self.path / "metadata.csv"
        if self.labels == "metadata" and self.metadata is None:
            raise SourceError(f"labels=metadata but {self.path / 'metadata.csv'} does not exist")
        if self.labels in ("folders", "none"):
            self.metadata = None
        # count(), fingerprint() and items() of one ingest share one directory walk and one
        # CSV parse: a corpus of 100k files is listed once, not three times.
        self._listing: list[Path] | None = None
        self._frame = None


def listing(cfg: Config) -> list[Path]:
    if cfg._listing is None:
        cfg._listing = audio_files(cfg.path)
    return cfg._listing


def metadata_frame(cfg: Config) -> pl.DataFrame:
    if cfg._frame is None:
        cfg._frame = read_metadata(cfg.metadata)
    return cfg._frame


def audio_files(root: Path) -> list[Path]:
    """Audio files under root (by extension; hidden files and folders skipped), in a stable order."""
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and "." in name and name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS:
                found.append(Path(directory) / name)
    return found


def _extension(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def _from_folders(cfg: Config) -> Iterator[SourceItem | Skipped]:
    for path in listing(cfg):
        relative = path.relative_to(cfg.path)
        meta = {}
        if cfg.labels != "none" and len(relative.parts) > 1:
            meta["label"] = relative.parts[-2]
        yield SourceItem(
            track_id=relative.with_suffix("").as_posix(),
            format=_extension(path),
            source=str(path),
            path=path,
            meta=meta,
        )


def read_metadata(csv_path: Path) -> pl.DataFrame:
    import polars as pl  # only metadata CSVs need it; keeps every other ingest's start-up short

    try:
        frame = pl.read_csv(csv_path, infer_schema_length=None, try_parse_dates=False)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SourceError(f"{csv_path}: cannot read CSV: {one_line(err)}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceError(f"{csv_path}: missing column {missing[0]!r} (has: {', '.join(frame.columns)})")
    ids = frame["track_id"].cast(pl.String)
    duplicated = frame.with_row_index("row").filter(ids.is_duplicated())
    if duplicated.height:
        first = duplicated.row(0, named=True)
        raise SourceError(
            f"{csv_path}: track_id {first['track_id']!r} appears {duplicated.height} times "
            f"(first at data row {first['row'] + 1}); track ids must be unique"
        )
    return frame


def _split_terms(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).replace(";", "|")
    return [part.strip() for part in text.split("|") if part.strip()] or None


def _from_metadata(cfg: Config) -> Iterator[SourceItem | Skipped]:
    frame = metadata_frame(cfg)
    base = cfg.metadata.parent
    for number, row in enumerate(frame.iter_rows(named=True), start=2):  # row 1 is the header
        where = f"{cfg.metadata}:{number}"
        track_id, audio_path = row.pop("track_id"), row.pop("audio_path")
        if track_id is None or str(track_id).strip() == "":
            yield Skipped(where, "empty track_id")
            continue
        if audio_path is None:
            yield Skipped(where, f"track {track_id!r}: empty audio_path")
            continue
        path = Path(str(audio_path)).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            yield Skipped(str(path), f"track {track_id!r} (row {number}): audio file not found")
            continue
        if "terms" in row:
            row["terms"] = _split_terms(row["terms"])
        for key in ("label", "culture", "affect_label", "speaker_id", "group_id", "split", "title", "text"):
            if row.get(key) is not None:
                row[key] = str(row[key])
        yield SourceItem(
            track_id=str(track_id),
            format=_extension(path) or "wav",
            source=str(path),
            path=path,
            meta=row,
        )


def items(cfg: Config) -> Iterator[SourceItem | Skipped]:
    yield from (_from_metadata(cfg) if cfg.metadata else _from_folders(cfg))


def count(cfg: Config) -> int:
    if cfg.metadata:
        return metadata_frame(cfg).height
    return len(listing(cfg))


def fingerprint(cfg: Config) -> str:
    """Changes when any audio file or the metadata changes; costs one stat per file."""
    digest = hashlib.sha256(f"folder:v1:{cfg.labels}".encode())
    if cfg.metadata:
        digest.update(cfg.metadata.read_bytes())
    for path in listing(cfg):
        stat = path.stat()
        digest.update(f"{path.relative_to(cfg.path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
