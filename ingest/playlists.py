"""Playlists (title + ordered song ids) into the `playlists` table: no audio, no shards.

    just ingest dataset=NAME source=playlists path=DIR [exclude=...] [min_songs=10]

`path` is a folder holding seed 004's CSV trio as the seed ships it, or one JSON file:

    gen_playlist_info.csv            glid, listname, tag_list          (the playlist's title)
    gen_playlist_song.csv[.sort]     special_gid, mixsongid            (its songs, in order)
    gen_song_info.csv                mixsongid, song_name, singer_name (the song list)

Each CSV needs its header; the separator (tab, comma, semicolon, pipe) is sniffed per file.
`mixsongid` is the `track_id`, so audio ingested under the same ids joins on it. JSON form:
`[{"playlist_id": "p1", "title": "...", "tracks": ["s1", "s2"]}, ...]`.

Nothing is dropped silently; the summary (and `result.problems`) lists: malformed CSV rows
(file:line and why), song rows whose playlist has no title, songs missing from the song list
(dropped unless `keep_unknown=true`), playlists excluded by a title rule or for being shorter
than `min_songs`. Songs without audio in `tracks` are kept and counted (collaborative vectors
and semantic IDs do not need audio). Titles that say nothing — `exclude=` (comma list, matched
case-insensitively), the built-in list `GENERIC_TITLES` and, with `exclude_artist_titles=true`
(default), a title that is only an artist's name — are left out, as the seed's LLM filter does;
`where=` keeps only the playlists matching a SQL predicate on `playlist_id` and `title`.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv

from ingest.source import SourceError, SourceItem, Skipped, file_state
from lake import atomic, catalog, locks, paths, queries
from lake.errors import one_line
from lake.schemas import PLAYLISTS

GENERIC_TITLES = ("my playlist", "playlist", "favourites", "favorites", "my favourites", "my favorites",
                  "liked songs", "untitled", "new playlist", "我喜欢", "我喜欢的音乐", "默认收藏", "默认歌单")
INFO, SONGS, SONG_LIST = "gen_playlist_info.csv", "gen_playlist_song.csv", "gen_song_info.csv"
COLUMNS = {INFO: ("glid", "listname"), SONGS: ("special_gid", "mixsongid"), SONG_LIST: ("mixsongid",)}
SHOWN = 20  # problems printed; the result keeps every one


@dataclass
class Config:
    path: str = ""
    exclude: str = ""                  # comma-separated titles to leave out (case-insensitive)
    exclude_artist_titles: bool = True  # a title that is only an artist's name says nothing
    min_songs: int = 1                 # the seed trains on playlists of at least 10 songs
    keep_unknown: bool = False         # keep songs missing from gen_song_info.csv
    where: str = ""                    # SQL predicate on playlist_id, title: the playlists to keep

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path= is required: a folder with the gen_*.csv trio, or a .json file")
        if self.where.strip():
            queries.predicate(self.where)
        if self.min_songs < 1:
            raise ValueError(f"min_songs={self.min_songs}: must be at least 1")


@dataclass
class PlaylistsResult:
    dataset: str
    playlists: int = 0
    rows: int = 0
    songs: int = 0
    without_audio: int = 0
    part: Path | None = None
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)   # problem kind → how many
    status: str = "written"

    def print_summary(self, console: Any) -> None:
        console.print(f"[green]{self.dataset}[/]: {self.playlists:,} playlists, {self.rows:,} entries, "
                      f"{self.songs:,} distinct songs ({self.without_audio:,} without audio in tracks, kept)")
        if self.counts:
            console.print("[yellow]left out[/]: " + ", ".join(f"{n:,} {k}" for k, n in self.counts.items()),
                          highlight=False)
        for line in self.problems[:SHOWN]:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
        if len(self.problems) > SHOWN:
            console.print(f"  … and {len(self.problems) - SHOWN} more")
        console.print(f"wrote {self.part}", highlight=False)


def items(cfg: Config) -> Iterator[SourceItem | Skipped]:
    """Playlists hold no audio: `ingest` calls `ingest_table` for this source instead."""
    raise SourceError("source=playlists writes the playlists table, not audio clips (use ingest.api.ingest)")
    yield  # pragma: no cover


def fingerprint(cfg: Config) -> str:
    digest = hashlib.sha256(json.dumps(cfg.__dict__, sort_keys=True).encode())
    for path in _files(Path(cfg.path)).values():
        digest.update(file_state(path).signature.encode())
    return digest.hexdigest()


def _files(root: Path) -> dict[str, Path]:
    if root.is_file():
        return {"json": root}
    if not root.is_dir():
        raise SourceError(f"path={root}: no such folder or file")
    found = {}
    for name in (INFO, SONG_LIST):
        if (root / name).is_file():
            found[name] = root / name
    for name in (SONGS, SONGS + ".sort"):
        if (root / name).is_file():
            found[SONGS] = root / name
            break
    missing = [n for n in (INFO, SONGS, SONG_LIST) if n not in found]
    if missing:
        raise SourceError(f"path={root}: missing {', '.join(missing)} (seed 004's trio: {INFO}, {SONGS}[.sort], {SONG_LIST})")
    return found


def _sniff(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        sample = handle.read(65536)
    first = sample.splitlines()[0] if sample else ""
    try:
        return csv.Sniffer().sniff(sample, delimiters="\t,;|").delimiter
    except csv.Error:
        # one-column or ragged samples: the header line decides
        return max("\t,;|", key=first.count) if any(c in first for c in "\t,;|") else ","


def read_csv(path: Path, wanted: tuple[str, ...], problems: list[str]) -> pa.Table:
    """All columns as text; a row with the wrong number of fields is reported as file:line."""
    delimiter = _sniff(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader([handle.readline()], delimiter=delimiter), [])
    header = [h.strip().lstrip("\ufeff") for h in header]
    absent = [c for c in wanted if c not in header]
    if absent:
        raise SourceError(f"{path}: the header must name {', '.join(wanted)} (it has {', '.join(header) or 'nothing'}; "
                          f"separator {delimiter!r})")

    def bad_row(row: Any) -> str:
        problems.append(f"{path.name}:{row.number}: malformed row ({row.actual_columns} fields, "
                        f"{row.expected_columns} expected): {(row.text or '')[:80]!r}")
        return "skip"

    try:
        return pa_csv.read_csv(
            path, read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 24,
                                                 use_threads=False),  # row numbers for the report,
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, invalid_row_handler=bad_row,
                                              quote_char='"' if delimiter != "\t" else False),
            convert_options=pa_csv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                  strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as err:
        raise SourceError(f"{path}: cannot read as CSV: {one_line(err)}") from None


def _from_trio(files: dict[str, Path], problems: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    start = len(problems)
    info = pl.from_arrow(read_csv(files[INFO], COLUMNS[INFO], problems))
    songs = pl.from_arrow(read_csv(files[SONGS], COLUMNS[SONGS], problems))
    song_list = pl.from_arrow(read_csv(files[SONG_LIST], COLUMNS[SONG_LIST], problems))
    malformed = len(problems) - start
    info = info.select(pl.col("glid").str.strip_chars().alias("playlist_id"),
                       pl.col("listname").str.strip_chars().alias("title"))
    songs = songs.select(pl.col("special_gid").str.strip_chars().alias("playlist_id"),
                         pl.col("mixsongid").str.strip_chars().alias("track_id"))
    cols = song_list.columns
    song_list = song_list.select(
        pl.col("mixsongid").str.strip_chars().alias("track_id"),
        (pl.col("song_name") if "song_name" in cols else pl.lit(None, pl.String)).alias("song_title"),
        (pl.col("singer_name") if "singer_name" in cols else pl.lit(None, pl.String)).alias("artist"))
    return info, songs, song_list.unique("track_id", keep="first"), malformed


def _from_json(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SourceError(f"{path}: not readable JSON: {one_line(err)}") from None
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a list of {{playlist_id, title, tracks}} objects")
    info, songs = [], []
    for i, entry in enumerate(data):
        if not (isinstance(entry, dict) and "playlist_id" in entry and isinstance(entry.get("tracks"), list)):
            raise SourceError(f"{path}: entry {i} needs playlist_id, title and a tracks list")
        pid = str(entry["playlist_id"])
        info.append({"playlist_id": pid, "title": str(entry.get("title") or "")})
        songs += [{"playlist_id": pid, "track_id": str(t)} for t in entry["tracks"]]
    schema = {"playlist_id": pl.String, "track_id": pl.String}
    return (pl.DataFrame(info, schema={"playlist_id": pl.String, "title": pl.String}),
            pl.DataFrame(songs, schema=schema), None)


def read(cfg: Config) -> tuple[pl.DataFrame, list[str], dict[str, int]]:
    """(playlist rows in table order, problem lines, problem kind → count)."""
    files = _files(Path(cfg.path))
    problems: list[str] = []
    counts: dict[str, int] = {}
    if "json" in files:
        info, songs, song_list = _from_json(files["json"])
    else:
        info, songs, song_list, malformed = _from_trio(files, problems)
        if malformed:
            counts["malformed rows"] = malformed
    songs = songs.with_row_index("order")
    untitled = songs.join(info, on="playlist_id", how="anti")
    if untitled.height:
        counts["song rows of a playlist with no title"] = untitled.height
        problems += [f"playlist {p}: in the song file but not in the playlist info (its songs left out)"
                     for p in untitled["playlist_id"].unique(maintain_order=True).to_list()]
    rows = songs.join(info.unique("playlist_id", keep="first"), on="playlist_id", how="inner")
    if song_list is not None:
        unknown = rows.join(song_list, on="track_id", how="anti")
        if unknown.height:
            kept = " (kept: keep_unknown=true)" if cfg.keep_unknown else ""
            counts["unknown songs" + (" (kept)" if cfg.keep_unknown else "")] = unknown.height
            problems += [f"playlist {p}: song {t} is not in {SONG_LIST}{kept}"
                         for p, t in unknown.select("playlist_id", "track_id").iter_rows()]
        rows = rows.join(song_list, on="track_id", how="left" if cfg.keep_unknown else "inner")
    else:
        rows = rows.with_columns(pl.lit(None, pl.String).alias("song_title"), pl.lit(None, pl.String).alias("artist"))
    rows = rows.sort("order")
    if cfg.where.strip():
        rows = _where(cfg, rows, counts)
    excluded = _excluded_titles(cfg, rows)
    out = rows.filter(~pl.col("title").str.to_lowercase().is_in(list(excluded)) & (pl.col("title") != ""))
    dropped = rows.filter(~pl.col("playlist_id").is_in(out["playlist_id"].implode()))["playlist_id"].n_unique()
    if dropped:
        counts["playlists with a title that says nothing"] = dropped
    sizes = out.group_by("playlist_id").len()
    short = sizes.filter(pl.col("len") < cfg.min_songs)
    if short.height:
        counts[f"playlists under min_songs={cfg.min_songs}"] = short.height
        out = out.join(short.select("playlist_id"), on="playlist_id", how="anti")
    out = out.with_columns(pl.int_range(pl.len()).over("playlist_id").cast(pl.Int32).alias("position"))
    return out.drop("order"), problems, counts


def _where(cfg: Config, rows: pl.DataFrame, counts: dict[str, int]) -> pl.DataFrame:
    titles = rows.select("playlist_id", "title").unique("playlist_id").to_arrow()
    con = duckdb.connect()
    con.register("playlist_titles", titles)
    try:
        kept = con.sql(f"SELECT playlist_id FROM playlist_titles WHERE {queries.predicate(cfg.where)}").to_arrow_table()
    except duckdb.Error as err:
        raise SourceError(f"where={cfg.where!r}: DuckDB says: {one_line(err)}") from None
    kept_ids = pl.from_arrow(kept)["playlist_id"]
    if titles.num_rows - len(kept_ids):
        counts[f"playlists not matching where={cfg.where}"] = titles.num_rows - len(kept_ids)
    return rows.filter(pl.col("playlist_id").is_in(kept_ids.implode()))


def _excluded_titles(cfg: Config, rows: pl.DataFrame) -> set[str]:
    titles = {t.strip().lower() for t in GENERIC_TITLES}
    titles |= {t.strip().lower() for t in cfg.exclude.split(",") if t.strip()}
    if cfg.exclude_artist_titles:
        titles |= {a.strip().lower() for a in rows["artist"].drop_nulls().unique().to_list() if a.strip()}
    return titles


def part_path(dataset: str) -> Path:
    return paths.partition_dir("playlists", dataset=dataset) / "part-000000.parquet"


def ingest_table(dataset: str, cfg: Config) -> PlaylistsResult:
    rows, problems, counts = read(cfg)
    table = pa.table({
        "dataset": pa.array([dataset] * rows.height, pa.string()),
        **{name: rows[name].to_arrow().cast(PLAYLISTS.field(name).type)
           for name in PLAYLISTS.names if name != "dataset"},
    }, schema=PLAYLISTS)
    part = part_path(dataset)
    with locks.file_lock(part.parent / ".lock"):
        atomic.write_parquet(table, part)
    catalog.refresh()
    songs = rows["track_id"].unique()
    result = PlaylistsResult(dataset, playlists=rows["playlist_id"].n_unique(), rows=rows.height,
                             songs=songs.len(), part=part, problems=problems, counts=counts)
    result.without_audio = _without_audio(dataset, songs.to_list())
    return result


def _without_audio(dataset: str, songs: list[str]) -> int:
    con = catalog.connect()
    con.register("playlist_songs", pa.table({"track_id": pa.array(songs, pa.string())}))
    return con.execute("""SELECT count(*) FROM playlist_songs WHERE track_id NOT IN
                          (SELECT track_id FROM tracks WHERE dataset = $d)""", {"d": dataset}).fetchone()[0]
