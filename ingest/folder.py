"""A directory of audio files, labelled by a metadata CSV or by sub-folder names.

Layout, either of:
- `DIR/metadata.csv` with at least `track_id, audio_path` (seed 000's `track_id, culture,
  audio_path`, plus optional `label, affect_label, speaker_id, ...`; any other column is kept).
  `audio_path` is relative to the CSV's folder, or absolute. A `terms` column holds terms
  separated by `|` or `;`.
  An empty cell, a quoted empty cell (`""`) and a cell of blanks are all missing values (NULL),
  never an empty-string class. `audio_path` must name the file with its extension: a row
  naming `tone` when `tone.mp3` exists is reported (with the candidates), not guessed.
- no CSV: every audio file under DIR (recursively) is a clip; its track id is its path
  relative to DIR without the extension, and files inside a sub-folder get that folder's name
  as `label` (GTZAN's `genres/blues/blues.00000.wav` layout). Files that share that id
  (`tone.mp3` and `tone.m4a`) both keep their extension in the id (`tone.mp3`, `tone.m4a`),
  and the ingest report notes it; a file whose id is its own keeps the short one.

Formats: wav, flac, ogg, mp3, aiff (libsndfile) and m4a/aac/mp4 (FFmpeg via PyAV). Files
with other extensions are skipped unread; a dangling symlink is skipped and reported.
License: whatever the user's files carry; nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

from ingest.probe import AUDIO_EXTENSIONS
from ingest.source import FileState, SourceError, SourceItem, Skipped, file_state
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
        self._listing: list[FileState] | None = None
        self._frame = None


def listing(cfg: Config) -> list[FileState]:
    """Every audio file under the folder, stat'ed once (the fingerprint and the items share it)."""
    if cfg._listing is None:
        cfg._listing = [file_state(path) for path in audio_files(cfg.path)]
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


def track_ids(root: Path, files: list[Path]) -> tuple[dict[Path, str], dict[Path, str]]:
    """Each file's track id, and a note for each file whose id is not its stem.

    The id is the path relative to root without the extension, unless another file has the
    same one (`tone.mp3`, `tone.m4a`): then each of them keeps its extension. A file name is
    unique in its folder, so a full name never clashes with another; the loop settles the
    rare stem that equals a full name (`tone.mp3.wav` beside `tone.mp3` and `tone.m4a`).
    """
    full = {path: path.relative_to(root).as_posix() for path in files}
    ids = {path: path.relative_to(root).with_suffix("").as_posix() for path in files}
    notes: dict[Path, str] = {}
    while True:
        users: dict[str, list[Path]] = defaultdict(list)
        for path, track_id in ids.items():
            users[track_id].append(path)
        renamed = [(path, track_id, paths) for track_id, paths in users.items() if len(paths) > 1
                   for path in paths if ids[path] != full[path]]
        if not renamed:
            return ids, notes
        for path, track_id, paths in renamed:
            ids[path] = full[path]
            others = ", ".join(full[other] for other in paths if other != path)
            notes[path] = f"shares the track id {track_id!r} with {others}, so its id keeps the extension"


def _from_folders(cfg: Config) -> Iterator[SourceItem | Skipped]:
    files = listing(cfg)
    ids, notes = track_ids(cfg.path, [state.path for state in files if state.problem is None])
    for state in files:
        path = state.path
        if state.problem is not None:
            yield Skipped(str(path), state.problem)
            continue
        relative = path.relative_to(cfg.path)
        meta = {}
        if cfg.labels != "none" and len(relative.parts) > 1:
            meta["label"] = relative.parts[-2]
        yield SourceItem(
            track_id=ids[path],
            format=_extension(path),
            source=str(path),
            path=path,
            meta=meta,
            note=notes.get(path),
        )


def read_metadata(csv_path: Path) -> pl.DataFrame:
    import polars as pl  # only metadata CSVs need it; keeps every other ingest's start-up short

    try:
        # null_values=[""]: a quoted empty cell is as missing as an empty one (polars reads
        # `""` as an empty string otherwise, which became a class of its own).
        frame = pl.read_csv(csv_path, infer_schema_length=None, try_parse_dates=False, null_values=[""])
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SourceError(f"{csv_path}: cannot read CSV: {one_line(err)}") from None
    # A cell of blanks carries no value either.
    frame = frame.with_columns(
        pl.when(pl.col(name).str.strip_chars() == "").then(None).otherwise(pl.col(name)).alias(name)
        for name, kind in frame.schema.items() if kind == pl.String
    )
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
            yield Skipped(str(path), f"track {track_id!r} (row {number}): {_not_found(path)}")
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


def _not_found(path: Path) -> str:
    """Why a row's audio_path names no file, with the files it may have meant."""
    if path.is_symlink():
        return f"dangling symlink to {os.readlink(path)}"
    if path.parent.is_dir():
        candidates = sorted(p.name for p in path.parent.glob(f"{glob_escape(path.name)}.*")
                            if _extension(p) in AUDIO_EXTENSIONS)
        if candidates:
            return ("audio file not found; audio_path must name the file with its extension, e.g. "
                    + " or ".join(candidates))
    return "audio file not found"


def items(cfg: Config) -> Iterator[SourceItem | Skipped]:
    yield from (_from_metadata(cfg) if cfg.metadata else _from_folders(cfg))


def count(cfg: Config) -> int:
    if cfg.metadata:
        return metadata_frame(cfg).height
    return len(listing(cfg))


def fingerprint(cfg: Config) -> str:
    """Changes when any audio file or the metadata changes; costs one stat per file (see
    `ingest.source.FileState` for what is compared, and what it cannot see)."""
    digest = hashlib.sha256(f"folder:v2:{cfg.labels}".encode())
    if cfg.metadata:
        digest.update(cfg.metadata.read_bytes())
    for state in listing(cfg):
        digest.update(f"{state.path.relative_to(cfg.path)}\0{state.signature}\n".encode())
    return digest.hexdigest()
