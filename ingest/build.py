"""One ingest: a source's items → decode-checked → shards + one `tracks` part, committed atomically.

A build writes its shards into a fresh directory `shards/<dataset>/<build_id>/` and commits by
atomically replacing the dataset's `tracks` part, which names those shards. Until that rename
readers see the previous build in full; after it, the new one in full; an interrupted build
leaves only an unreferenced directory that the next run removes. In an S3 lake the shards are
written in a local temporary folder and each uploaded whole (one object each) before the
`tracks` part, the commit, is uploaded: the same order, with a PUT for the rename.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from rich.console import Console

from lake.cli import make_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ingest.check import checked_items
from ingest.shards import ShardWriter, make_key
from ingest.source import SourceItem, Skipped
from lake import atomic, catalog, locks, parts, paths, storage, validate_audio
from lake.schemas import TRACKS_IDENTITY, coerce_metadata, tracks_table

FINGERPRINT_KEY = "audiolake.ingest.fingerprint"
BUILD_KEY = "audiolake.ingest.build"
# Bumped when a build writes something new for the same source, so an unchanged source is
# rebuilt once: v2 measures each clip's level (peak_db, rms_db). Vectors survive a rebuild
# (they are matched by track_id and sha256).
PIPELINE_VERSION = "ingest:v2"
# Measured by the ingest, never taken from a source's metadata (like TRACKS_IDENTITY).
MEASURED = ("peak_db", "rms_db")


@dataclass
class IngestOptions:
    dataset: str
    source: str = ""
    force: bool = False
    strict: bool = False  # any skipped or flagged (silent, flat, very short) clip fails the ingest
    transcode: Literal["none", "flac"] = "none"
    shard_max_mb: float = 256.0
    shard_max_count: int = 1000
    workers: int = 0  # 0: one per CPU core

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        if self.shard_max_mb <= 0:
            raise ValueError(f"shard_max_mb={self.shard_max_mb}: must be positive")
        if self.shard_max_count < 1:
            raise ValueError(f"shard_max_count={self.shard_max_count}: must be at least 1")
        if self.workers < 0:
            raise ValueError(f"workers={self.workers}: must be 0 (auto) or more")


@dataclass
class IngestResult:
    dataset: str
    status: Literal["written", "unchanged", "failed"]
    written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)  # kept, but silent/flat/short
    notes: list[dict[str, str]] = field(default_factory=list)    # e.g. a track id that is not its stem
    duplicates: list[list[str]] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    audio_hours: float = 0.0
    seconds: float = 0.0
    report: str | None = None
    tracks_part: str | None = None


class IngestFailed(Exception):
    def __init__(self, message: str, result: IngestResult):
        super().__init__(message)
        self.result = result


def tracks_part(dataset: str) -> Path:
    return paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet"


def committed(dataset: str) -> dict[str, str]:
    """The committed build's metadata; none when the dataset has no readable `tracks` part (a
    damaged one is set aside by `lake.parts`, so the next ingest rebuilds instead of crashing)."""
    part = tracks_part(dataset)
    if part not in parts.table_parts("tracks", dataset=dataset):
        return {}
    return atomic.read_parquet_metadata(part)


def dataset_lock(dataset: str):
    """Two ingests of one dataset at once would race on the commit; the second waits."""
    return locks.file_lock(paths.shards_dir(dataset) / ".lock")


def remove_stale_builds(dataset: str, keep: set[str | None]) -> None:
    for name, entry, is_dir, _ in storage.entries(paths.shards_dir(dataset)):
        if is_dir and name not in keep:
            storage.remove_tree(entry)


def build_fingerprint(options: IngestOptions, source_fingerprint: str) -> str:
    relevant = f"{PIPELINE_VERSION}|{options.source}|{source_fingerprint}|{options.transcode}|{options.shard_max_mb}|{options.shard_max_count}"
    return hashlib.sha256(relevant.encode()).hexdigest()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("[red]{task.fields[bad]}"),
        TimeElapsedColumn(), console=console, transient=False,
    )


def _source_meta(item: SourceItem) -> dict[str, Any]:
    return {k: v for k, v in item.meta.items() if k not in TRACKS_IDENTITY.names and k not in MEASURED}


def _json_row(dataset: str, item: SourceItem, fmt: str, sha: str, info: Any) -> dict[str, Any]:
    return {
        "dataset": dataset, "track_id": item.track_id, "format": fmt, "sha256": sha,
        "duration_s": info.duration_s, "sample_rate": info.sample_rate,
        "channels": info.channels, "source": item.source, **_source_meta(item),
    }


def run(options: IngestOptions, items: Iterator[SourceItem | Skipped], source_fingerprint: str,
        total: int | None = None, console: Console | None = None) -> IngestResult:
    console = console or make_console(stderr=True)
    fingerprint = build_fingerprint(options, source_fingerprint)
    with dataset_lock(options.dataset):
        previous = committed(options.dataset)
        if previous.get(FINGERPRINT_KEY) == fingerprint and not options.force:
            return IngestResult(options.dataset, "unchanged", tracks_part=str(tracks_part(options.dataset)))
        remove_stale_builds(options.dataset, keep={previous.get(BUILD_KEY)})
        build_id = time.strftime("b%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        build_dir = paths.shards_dir(options.dataset) / build_id
        try:
            with storage.local_folder(build_dir) as folder:
                result, rows = _write_shards(options, items, folder, build_dir, total, console)
                if storage.is_object(build_dir):
                    storage.upload_tree(folder, build_dir)
            _commit(options, result, rows, fingerprint, build_id)
        except BaseException:
            storage.remove_tree(build_dir)
            raise
        # The previous build stays one generation: a reader that planned from the old manifest
        # (an embed job mid-run) still finds its bytes. The next rebuild removes it.
        remove_stale_builds(options.dataset, keep={build_id, previous.get(BUILD_KEY)})
    catalog.refresh()
    return result


def _write_shards(options, items, folder, build_dir, total, console):
    """Writes the shards into the local `folder`; the rows name them where they will be, in `build_dir`."""
    started = time.perf_counter()
    result = IngestResult(options.dataset, "written")
    workers = options.workers or os.cpu_count() or 1
    writer = ShardWriter(folder, options.dataset, int(options.shard_max_mb * 2**20), options.shard_max_count)
    rows: list[dict[str, Any]] = []
    keys: set[str] = set()
    seen_ids: set[str] = set()
    by_sha: dict[str, list[str]] = defaultdict(list)
    where = build_dir.relative_to(paths.root())
    with _progress(console) as progress:
        task = progress.add_task(f"ingest {options.dataset}", total=total, rate="", bad="")
        for item, checked in checked_items(items, workers, options.transcode):
            progress.advance(task)
            if isinstance(item, Skipped):
                result.skipped.append({"source": item.source, "reason": item.reason})
            elif checked.reason is not None:
                result.skipped.append({"source": item.source, "reason": checked.reason})
            elif item.track_id in seen_ids:
                result.skipped.append({"source": item.source, "reason": f"duplicate track_id {item.track_id!r}"})
            elif (bad_meta := _invalid_metadata(item)) is not None:
                result.skipped.append({"source": item.source, "reason": bad_meta})
            else:
                seen_ids.add(item.track_id)
                rows.append(_write_one(options, item, checked, writer, keys, by_sha, where, result))
                _flag_and_note(item, checked.info, result)
            elapsed = time.perf_counter() - started
            progress.update(task, rate=f"{len(rows) / elapsed:,.0f} clips/s  {result.audio_bytes / 2**20 / elapsed:,.1f} MB/s",
                            bad=f"{len(result.skipped)} skipped" if result.skipped else "")
    result.shards = [str(where / p.name) for p in writer.close()]
    result.duplicates = [ids for ids in by_sha.values() if len(ids) > 1]
    result.seconds = time.perf_counter() - started
    return result, rows


def _flag_and_note(item: SourceItem, info: Any, result: IngestResult) -> None:
    """What the report says about a clip that was written: its flags, and the source's note."""
    flags = validate_audio.clip_flags(info.peak_db, info.rms_db, info.duration_s)
    if flags:
        result.flagged.append({
            "source": item.source, "track_id": item.track_id, "flags": flags,
            "reason": validate_audio.describe(flags, info.peak_db, info.rms_db, info.duration_s)})
    if item.note:
        result.notes.append({"source": item.source, "track_id": item.track_id, "note": item.note})


def _invalid_metadata(item: SourceItem) -> str | None:
    # A blank string is no value, whichever source it came from: "" never becomes a class.
    item.meta = {k: None if isinstance(v, str) and not v.strip() else v for k, v in item.meta.items()}
    try:
        item.meta = coerce_metadata(item.meta)
    except ValueError as err:
        return f"track {item.track_id!r}: {err}"
    return None


def _write_one(options, item, checked, writer, keys, by_sha, where, result) -> dict[str, Any]:
    # A file is copied into the shard by the kernel; the parent never reads its bytes.
    audio = checked.transcoded if checked.transcoded is not None else item.data if item.data is not None else item.path
    fmt = "flac" if checked.transcoded is not None else item.format
    sha = checked.sha256
    key = make_key(item.track_id, keys)
    member = writer.write(key, fmt, audio, _json_row(options.dataset, item, fmt, sha, checked.info), size=checked.nbytes)
    by_sha[sha].append(item.track_id)
    result.written += 1
    result.audio_bytes += member.nbytes
    result.audio_hours += checked.info.duration_s / 3600
    return {
        "dataset": options.dataset, "track_id": item.track_id,
        "shard": str(where / member.shard.name), "key": key, "offset": member.offset,
        "nbytes": member.nbytes, "format": fmt, "sha256": sha,
        "duration_s": checked.info.duration_s, "sample_rate": checked.info.sample_rate,
        "channels": checked.info.channels, "source": item.source,
        "peak_db": checked.info.peak_db, "rms_db": checked.info.rms_db, **_source_meta(item),
    }


def _commit(options, result, rows, fingerprint, build_id) -> None:
    report = paths.reports_dir(options.dataset) / "ingest.json"
    refused = result.skipped + result.flagged
    if options.strict and refused:
        _fail(report, options, result,
              f"strict=true and {len(result.skipped)} clip(s) were skipped, {len(result.flagged)} flagged; "
              f"nothing committed (first: {refused[0]['source']}: {refused[0]['reason']}; all in {report})")
    if not rows:
        why = (f"none of the {len(result.skipped)} clip(s) is readable" if result.skipped
               else "the source yielded no clips (an empty folder or dataset?)")
        _fail(report, options, result, f"{why}; nothing committed (see {report})")
    part = tracks_part(options.dataset)
    atomic.write_parquet(tracks_table(rows), part, {FINGERPRINT_KEY: fingerprint, BUILD_KEY: build_id})
    result.tracks_part = str(part)
    _write_report(report, options, result)


def _fail(report: Path, options: IngestOptions, result: IngestResult, message: str) -> None:
    result.status = "failed"
    result.shards = []  # the build directory is removed on the way out: there are none
    _write_report(report, options, result)
    raise IngestFailed(message, result)


def _write_report(path: Path, options: IngestOptions, result: IngestResult) -> None:
    result.report = str(path)
    atomic.write_json({"options": asdict(options), **asdict(result)}, path)

