"""A ranking file: groups of clips, each group ordered best → worst (seed 001's singing quality).

What it reads: one JSON file (`path=`), a list of groups. A group is either a bare list of
entries or an object `{"group_id": ..., "items": [...]}` (`group` is accepted for `group_id`;
any other key of the object is copied to each of its entries unless the entry has it). An
entry is `{"audio_file": "clips/a.wav", "score": 87.5, ...}` (`score` optional) or just the
path string. Example:

    [
      [ {"audio_file": "g1/a.wav", "score": 90}, {"audio_file": "g1/b.wav", "score": 70}, ],
      {"group_id": "song-7", "items": [ {"audio_file": "g2/c.wav"}, {"audio_file": "g2/d.wav"} ]},
    ]

Trailing commas before `]`/`}` (which seed 001's files have) are tolerated: the file is read
with `json.loads` first and, only if that fails, again after a string-aware pass blanks out
commas that directly precede a closing bracket (commas and brackets inside strings are left
alone, and offsets are preserved so errors still point at the right line and column). Any
other malformed JSON stops the ingest with a `SourceError` naming line and column.

Audio paths are relative to `audio_root=` (default: the JSON file's folder) or absolute.

Rows: `track_id` is the audio_file path without its extension (posix, relative, e.g.
`g1/a`); `group_id` the group's id or `g<index:05d>` (0-based position of the group in the
file); `rank` the 1-based position of the entry in its group as written, so a skipped entry
leaves a gap rather than shifting the ranks below it; `score` (float) when given; every other
key of an entry is kept as an extra column (nested values as JSON text; keys that clash with
manifest columns get a `json_` prefix).

Reported as `Skipped`, never dropped: a missing audio file, an entry without `audio_file`, a
non-numeric score, a malformed group, and a file that already appeared earlier (the clip
keeps its first group; the reason names it). License: whatever the user's files carry.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from ingest.source import ListedFiles, SourceError, SourceItem, Skipped, file_state

_IDENTITY = {
    "dataset", "track_id", "shard", "key", "offset", "nbytes", "format", "sha256",
    "duration_s", "sample_rate", "channels", "source",
}
_RESERVED = _IDENTITY | {"group_id", "rank", "score", "audio_file"}
_STRING_META = {"split", "label", "culture", "affect_label", "speaker_id", "text", "title"}
_GROUP_KEYS = ("group_id", "group")


@dataclass
class Config:
    path: Path
    audio_root: Path | None = None  # default: the JSON file's folder

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if not self.path.is_file():
            raise SourceError(f"path={self.path}: no such file (a JSON list of ranked groups)")
        self.audio_root = Path(self.audio_root).expanduser() if self.audio_root else self.path.parent
        if not self.audio_root.is_dir():
            raise SourceError(f"audio_root={self.audio_root}: not a directory")


# --- reading the file -------------------------------------------------------------------------


def strip_trailing_commas(text: str) -> str:
    """Blanks (with a space, keeping offsets) each comma between a value and `]`/`}`, outside strings.

    Only a comma that follows a complete value is a trailing comma: `[,]` or `{"a": 1,,}` stay
    as they are, so the JSON error still points at the real mistake.
    """
    out = list(text)
    in_string = escaped = False
    previous = ""  # the last significant character outside strings ('"' for a closed string)
    pending: int | None = None  # index of a comma that may turn out to be trailing
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string, previous = False, '"'
            continue
        if char.isspace():
            continue
        if char in "]}" and pending is not None:
            out[pending] = " "
        pending = i if char == "," and previous not in ("", ",", "[", "{", ":") else None
        if char == '"':
            in_string = True
        previous = char
    return "".join(out)


def parse(path: Path) -> list[Any]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SourceError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise SourceError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = json.loads(strip_trailing_commas(text))
        except json.JSONDecodeError as err:
            raise SourceError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: "
                              f"{err.msg}") from None
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of groups, found a {type(data).__name__}")
    return data


def _groups(cfg: Config, data: list[Any]) -> Iterator[tuple[str, list[Any], dict[str, Any]] | Skipped]:
    """(group_id, entries, keys shared by the entries) per group, or Skipped for a bad group."""
    seen: dict[str, int] = {}
    for index, group in enumerate(data):
        shared: dict[str, Any] = {}
        group_id: Any = None
        if isinstance(group, dict):
            entries = group.get("items")
            for key in _GROUP_KEYS:
                if group.get(key) is not None:
                    group_id = group[key]
                    break
            shared = {k: v for k, v in group.items() if k not in ("items", *_GROUP_KEYS)}
        else:
            entries = group
        group_id = f"g{index:05d}" if group_id is None else str(group_id)
        if not isinstance(entries, list):
            what = "an object without an `items` list" if isinstance(group, dict) else f"a {type(group).__name__}"
            yield Skipped(f"{cfg.path}: group {index}", f"not a group: {what} (expected a list of entries "
                                                         f"or {{group_id, items}})")
            continue
        if group_id in seen:
            raise SourceError(f"{cfg.path}: group_id {group_id!r} is used by groups {seen[group_id]} and "
                              f"{index}; ranks within a group must be unambiguous")
        seen[group_id] = index
        yield group_id, entries, shared


def _track_id(audio_file: str, root: Path) -> str:
    posix = PurePosixPath(audio_file.replace("\\", "/"))
    if posix.is_absolute():
        try:
            posix = PurePosixPath(Path(audio_file).resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            pass
    parts = [p for p in posix.parts if p not in (".", "")]
    return PurePosixPath(*parts).with_suffix("").as_posix() if parts else audio_file


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _extra(key: str, value: Any) -> tuple[str, Any]:
    name = f"json_{key}" if key in _RESERVED else key
    if value is None:
        return name, None
    if name in _STRING_META:
        return name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if name == "terms":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return name, value
        if isinstance(value, str):
            return name, [t.strip() for t in value.replace(";", "|").split("|") if t.strip()]
        return "json_terms", json.dumps(value, ensure_ascii=False)
    if isinstance(value, (dict, list)):
        return name, json.dumps(value, ensure_ascii=False)
    return name, value


def items(cfg: Config) -> Iterator[SourceItem | Skipped]:
    root = cfg.audio_root
    listed = ListedFiles()
    for group in _groups(cfg, parse(cfg.path)):
        if isinstance(group, Skipped):
            yield group
            continue
        group_id, entries, shared = group
        for rank, entry in enumerate(entries, start=1):
            where = f"{cfg.path}: group {group_id}, rank {rank}"
            if isinstance(entry, str):
                entry = {"audio_file": entry}
            if not isinstance(entry, dict) or not isinstance(entry.get("audio_file"), str) \
                    or not entry["audio_file"].strip():
                yield Skipped(where, "entry has no `audio_file` path")
                continue
            audio_file = entry["audio_file"].strip()
            path = Path(audio_file).expanduser()
            path = path if path.is_absolute() else root / audio_file.replace("\\", "/")
            fmt = listed.check(path, f"group {group_id}, rank {rank}")
            if isinstance(fmt, Skipped):
                yield fmt
                continue
            meta: dict[str, Any] = {"group_id": group_id, "rank": rank}
            if entry.get("score") is not None:
                score = _number(entry["score"])
                if score is None:
                    yield Skipped(str(path), f"score {entry['score']!r} is not a number (group {group_id}, rank {rank})")
                    continue
                meta["score"] = score
            extras = {k: v for k, v in shared.items() if k not in entry}
            extras.update((k, v) for k, v in entry.items() if k not in ("audio_file", "score"))
            for key, value in extras.items():
                name, value = _extra(key, value)
                meta[name] = value
            yield SourceItem(track_id=_track_id(audio_file, root), format=fmt, source=str(path),
                             path=path, meta=meta)


def count(cfg: Config) -> int:
    total = 0
    for group in _groups(cfg, parse(cfg.path)):
        total += 1 if isinstance(group, Skipped) else len(group[1])
    return total


def fingerprint(cfg: Config) -> str:
    """The JSON's bytes, the audio root, and the `FileState` signature of every audio file it names."""
    digest = hashlib.sha256(b"ranking_json:v2\0" + str(cfg.audio_root.resolve()).encode() + b"\0")
    digest.update(cfg.path.read_bytes())
    for group in _groups(cfg, parse(cfg.path)):
        if isinstance(group, Skipped):
            continue
        for entry in group[1]:
            audio_file = entry if isinstance(entry, str) else entry.get("audio_file") if isinstance(entry, dict) else None
            if not isinstance(audio_file, str):
                continue
            path = Path(audio_file.strip()).expanduser()
            path = path if path.is_absolute() else cfg.audio_root / audio_file.strip().replace("\\", "/")
            digest.update(f"{path}\0{file_state(path).signature}\n".encode())
    return digest.hexdigest()
