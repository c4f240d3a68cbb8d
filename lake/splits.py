"""`just split` — a named, seeded, stratified, group-aware train/val/test split, leakage-checked.

    just split dataset=demo [name=default] [ratios=0.8,0.1,0.1] [seed=42] [stratify=label,culture]
               [group=speaker_id] [where="culture <> 'west'"]
               [backbone=musicnn-mtt layer=... threshold=0.98 center=false]
               [allow_leakage=false]
    just split dataset=eatd name=source from_source=true group=speaker_id

The assignment (`lake.split_assign`) keeps every value of each `group` column, and every set
of identical audio (sha256), inside one split; strata are the combinations of the `stratify`
columns; each split's size is within a stated tolerance of its ratio (printed). With
`from_source=true` the `split` column of `tracks` is adopted instead (train/val/validation/test).

Before anything is written the leakage checks of `lake.leakage` run on the new split; any
leakage fails the command and the split is NOT written (an existing split of that name stays
as it was), unless `allow_leakage=true`. Not writing is better than writing and removing: a
reader (or a crash between the two) never sees a leaking split. The report is written either way.

The split lands in `tables/splits/dataset=<d>/split_name=<name>/part-000000.parquet` with its
parameters (its where= among them) in the Parquet metadata (`audiolake.split.params`) and each
track's sha256 beside its assignment; a re-run under the same name replaces it and says what
changed. `coverage_problem` compares a split with what its where= selects now: tracks added or
gone since, and tracks whose audio changed (splits written before hashes were stored: ids only).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from lake import atomic, catalog, leakage, paths, queries
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.schemas import SPLITS
from lake.split_assign import ALGORITHM, SPLIT_NAMES, Assignment, assign, check_ratios
from lake.errors import one_line

SOURCE_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


class SplitFailed(Exception):
    """The split cannot be made or must not be written; the message says why."""


@dataclass
class SplitConfig:
    dataset: str
    name: str = "default"
    ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 42
    stratify: tuple[str, ...] = ("label",)   # empty: no strata
    group: tuple[str, ...] = ()              # columns whose values never span two splits
    from_source: bool = False
    where: str | None = None                 # SQL predicate on tracks, e.g. "duration_s > 2"
    backbone: str | None = None              # near-duplicate check with this backbone's vectors
    layer: str | None = None
    threshold: float = 0.98
    center: bool = False                     # near-duplicates on mean-centred vectors
    allow_leakage: bool = False

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        paths.check_name("name", self.name)
        self.ratios = check_ratios(self.ratios)
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold={self.threshold}: cosine threshold must be in (0, 1]")
        if self.where:
            queries.predicate(self.where)


part_path = leakage.split_part
split_params = leakage.split_params


def check_columns(con: duckdb.DuckDBPyConnection, cfg: SplitConfig) -> None:
    columns = [r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE tracks)").fetchall()]
    for key in ("stratify", "group"):
        for name in getattr(cfg, key):
            if name not in columns:
                raise UsageError(f"{key}={name}: not a column of tracks (columns: {', '.join(columns)})")


def read_tracks(con: duckdb.DuckDBPyConnection, cfg: SplitConfig) -> pa.Table:
    """track id, sha256, the source split and the stratify/group columns as text, one row per track."""
    # The column names are bound values matched by COLUMNS, never spliced into the text. `where`
    # is the user's own SQL over their own lake (as in `just sql`), so it is spliced, in brackets.
    wanted = list(dict.fromkeys(["dataset", *cfg.stratify, *cfg.group]))
    sql = ("SELECT track_id AS _track_id, sha256 AS _sha256, split AS _source_split, "
           "CAST(COLUMNS(lambda c: list_contains($wanted, c)) AS VARCHAR) "
           "FROM tracks WHERE dataset = $dataset" + (f" AND {queries.predicate(cfg.where)}" if cfg.where else "")
           + " ORDER BY track_id")
    try:
        table = con.sql(sql, params={"wanted": wanted, "dataset": cfg.dataset}).to_arrow_table()
    except duckdb.Error as err:
        raise UsageError(f"where={cfg.where!r}: {one_line(err)}") from None
    if table.num_rows == 0:
        hint = f"where={cfg.where!r} selects none" if cfg.where else f"ingest it first: just ingest dataset={cfg.dataset}"
        raise SplitFailed(f"dataset={cfg.dataset} has no tracks to split ({hint})")
    return table


def adopt_source(table: pa.Table) -> np.ndarray:
    """The source's own split column, validation → val; anything else is named and refused."""
    values = table.column("_source_split").to_pylist()
    ids = table.column("_track_id").to_pylist()
    normalised = [None if v is None else SOURCE_NAMES.get(v.strip().lower()) for v in values]
    bad = [(i, v) for i, v, n in zip(ids, values, normalised) if n is None]
    if bad:
        distinct = sorted({"NULL" if v is None else repr(v) for _, v in bad})
        raise SplitFailed(f"from_source=true: tracks.split of {len(bad)} tracks is not train, val, validation or "
                          f"test: {', '.join(distinct[:5])} (e.g. track {bad[0][0]})")
    return np.asarray(normalised, dtype=object)


def strata_keys(table: pa.Table, stratify: tuple[str, ...]) -> list[str]:
    columns = [table.column(c).to_pylist() for c in stratify]
    return [" · ".join("(none)" if v is None else v for v in row) for row in zip(*columns)] if columns \
        else [""] * table.num_rows


def make_split(cfg: SplitConfig, table: pa.Table) -> tuple[np.ndarray, Assignment | None]:
    if cfg.from_source:
        return adopt_source(table), None
    links = [table.column(c).to_pylist() for c in cfg.group] + [table.column("_sha256").to_pylist()]
    result = assign(table.column("_track_id").to_pylist(), strata_keys(table, cfg.stratify), links,
                    cfg.ratios, cfg.seed)
    return result.split, result


def params_of(cfg: SplitConfig, n: int) -> dict:
    params = asdict(cfg)
    params.update(ratios=list(cfg.ratios), stratify=list(cfg.stratify), group=list(cfg.group),
                  algorithm="from_source" if cfg.from_source else ALGORITHM, tracks=n,
                  created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return params


def splits_table(cfg: SplitConfig, table: pa.Table, split: np.ndarray) -> pa.Table:
    n = table.num_rows
    return pa.Table.from_arrays([pa.array([cfg.dataset] * n, pa.string()), pa.array([cfg.name] * n, pa.string()),
                                 table.column("_track_id").cast(pa.string()), pa.array(split.tolist(), pa.string()),
                                 table.column("_sha256").cast(pa.string())], schema=SPLITS)


# ---- does a stored split still cover what it was made from? ---------------------------------

def _plural(n: int, one: str, many: str) -> str:
    return (one if n == 1 else many).format(n=n)


def coverage_changes(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str) -> str | None:
    """What changed in the tracks the split's where= selects since the split was made, or None
    (also when there is no such split: that is a different complaint)."""
    params = split_params(dataset, split_name)
    if params is None:
        return None
    listed = pq.ParquetFile(part_path(dataset, split_name)).read()
    if "sha256" not in listed.column_names:  # made before splits stored hashes: judged on ids alone
        listed = listed.append_column("sha256", pa.nulls(listed.num_rows, pa.string()))
    where = params.get("where")
    con.register("_split_listed", listed.select(["track_id", "sha256"]))
    try:
        selected = ("SELECT track_id, max(sha256) AS sha256 FROM tracks WHERE dataset = $dataset"
                    + (f" AND {queries.predicate(where)}" if where else "") + " GROUP BY track_id")
        ((added, gone, changed),) = con.execute(
            f"WITH now AS ({selected}) SELECT "
            "count(*) FILTER (WHERE s.track_id IS NULL), count(*) FILTER (WHERE n.track_id IS NULL), "
            "count(*) FILTER (WHERE s.sha256 <> n.sha256) "
            "FROM (SELECT DISTINCT track_id, sha256 FROM _split_listed) AS s FULL JOIN now AS n USING (track_id)",
            {"dataset": dataset}).fetchall()
    except (duckdb.Error, ValueError) as err:
        return f"its where={where!r} no longer runs ({one_line(err, 160)})"
    finally:
        con.unregister("_split_listed")
    found = [_plural(added, "{n} track added since it was made", "{n} tracks added since it was made") if added else "",
             _plural(gone, "{n} listed track is gone", "{n} listed tracks are gone") if gone else "",
             _plural(changed, "{n} track's audio changed", "{n} tracks' audio changed") if changed else ""]
    return ", ".join(f for f in found if f) or None


def remake_command(dataset: str, split_name: str, params: dict) -> str:
    """`just split ...` with the split's own non-default parameters."""
    words = [f"dataset={dataset}", f"name={split_name}"]
    for field in fields(SplitConfig):
        if field.name in ("dataset", "name") or field.name not in params:
            continue
        value, default = params[field.name], field.default
        if (list(default) if isinstance(default, tuple) else default) == value or value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        word = f"{field.name}={text.lower() if isinstance(value, bool) else text}"
        # pasteable into a shell: bare when safe, else in the double quotes a person would type
        words.append(word if re.fullmatch(r"[\w=.,:/+-]+", word) else
                     f'"{word}"' if not re.search(r'["$`\\]', word) else shlex.quote(word))
    return "just split " + " ".join(words)


def coverage_problem(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str) -> str | None:
    """One line saying how split `split_name` of `dataset` no longer covers the tracks it was
    made from (added, gone, audio changed) and the command that remakes it; None when it does."""
    changes = coverage_changes(con, dataset, split_name)
    if changes is None:
        return None
    params = split_params(dataset, split_name) or {}
    return (f"split {split_name} of {dataset} no longer covers its dataset: {changes}; "
            f"remake it: {remake_command(dataset, split_name, params)}")


def replacement_note(cfg: SplitConfig, params: dict, table: pa.Table) -> str:
    """What a re-run under an existing name changes: parameters and tracks moved."""
    old = split_params(cfg.dataset, cfg.name)
    if old is None:
        return ""
    target = part_path(cfg.dataset, cfg.name)
    changed = [f"{k} {old.get(k)!r} → {v!r}" for k, v in params.items()
               if k not in ("created_at", "tracks") and old.get(k) != v]
    before = dict(zip(*[pq.read_table(target, columns=[c]).column(c).to_pylist() for c in ("track_id", "split")]))
    after = dict(zip(table.column("track_id").to_pylist(), table.column("split").to_pylist()))
    moved = sum(1 for t, s in after.items() if t in before and before[t] != s)
    added, removed = len(after.keys() - before.keys()), len(before.keys() - after.keys())
    tracks = (f"{moved:,} tracks moved" + (f", {added:,} added" if added else "")
              + (f", {removed:,} removed" if removed else ""))
    if not changed:
        return f"replaced the split of the same name (same parameters; {tracks})"
    return f"replaced the split of the same name, parameters changed: {'; '.join(changed)} ({tracks})"


def print_summary(con: duckdb.DuckDBPyConnection, cfg: SplitConfig, console: Console, max_strata: int = 40) -> None:
    stratify = ",".join(cfg.stratify) or "dataset"  # one constant column: a single stratum
    rows = queries.run_file(con, "split_summary", dataset=cfg.dataset, split_name=cfg.name,
                            stratify=stratify).to_pylist()
    cells: dict[str, dict[str, tuple[int, float]]] = {}
    for r in rows:
        cells.setdefault(r["stratum"], {})[r["split"]] = (r["tracks"], r["share_of_stratum"])
    table = Table(title=f"{cfg.dataset} · split {cfg.name} · tracks per split × {stratify.replace(',', ' · ')}",
                  header_style="bold")
    table.add_column("stratum")
    for name in (*SPLIT_NAMES, "total"):
        table.add_column(name, justify="right")
    for k, (stratum, by_split) in enumerate(cells.items()):
        if k == max_strata + 1:
            table.add_row(f"… {len(cells) - k} more strata", *[""] * 4)
            break
        total = sum(n for n, _ in by_split.values())
        table.add_row(stratum, *[f"{by_split[s][0]:,} ({by_split[s][1]:.0%})" if s in by_split else "0"
                                 for s in SPLIT_NAMES], f"{total:,}", end_section=stratum == "(all)")
    console.print(table)


def print_tolerance(result: Assignment, split: np.ndarray, cfg: SplitConfig, console: Console) -> None:
    n = len(split)
    grouping = " or ".join([*cfg.group, "identical audio"])
    console.print(f"{n:,} tracks in {len(result.unit_sizes):,} units (tracks sharing {grouping} stay together; "
                  f"largest {result.largest_unit:,})", highlight=False)
    parts = []
    for name, ratio in zip(SPLIT_NAMES, result.ratios):
        count = int((split == name).sum())
        parts.append(f"{name} {count:,} ({count / n:.1%}, target {ratio * n:,.1f})")
        if ratio > 0 and count == 0:
            console.print(f"[yellow]warning:[/] {name} is empty ({ratio:g} of {n:,} tracks in "
                          f"{len(result.unit_sizes):,} units)")
    console.print(" · ".join(parts) + f"; tolerance ±{result.bound_rows():.1f} tracks per split, "
                  f"±{result.stratum_bound_rows():.0f} per stratum", highlight=False)


def run(cfg: SplitConfig, console: Console) -> int:
    con = catalog.connect()
    check_columns(con, cfg)
    table = read_tracks(con, cfg)
    try:
        split, result = make_split(cfg, table)
    except ValueError as err:  # e.g. a track id twice in tracks
        raise SplitFailed(f"dataset={cfg.dataset}: {err}") from None
    ids = table.column("_track_id").to_pylist()
    new = splits_table(cfg, table, split)
    outdated = coverage_changes(con, cfg.dataset, cfg.name)  # of the split this one replaces
    con.register("splits", new)  # shadows the catalog's view: checks and summary see the new split
    print_summary(con, cfg, console)
    if result is not None:
        print_tolerance(result, split, cfg, console)

    try:
        checks = leakage.run_checks(con, cfg.dataset, cfg.name, cfg.group, cfg.backbone, cfg.layer,
                                    cfg.threshold, console=console, center=cfg.center)
    except (FileNotFoundError, ValueError) as err:
        raise SplitFailed(str(err)) from None
    leaks = any(c.status == "leak" for c in checks)
    note = ("split not written: leakage found (allow_leakage=true writes it anyway)" if leaks and not cfg.allow_leakage
            else "written with leakage (allow_leakage=true)" if leaks else "")
    counts = leakage.split_counts(con, cfg.dataset, cfg.name)
    _, _, md_path = leakage.write_report(cfg.dataset, cfg.name, checks, counts, note)
    console.print("leakage:", highlight=False)
    leakage.print_summary(checks, console)
    console.print(f"report {md_path}", highlight=False)
    if leaks and not cfg.allow_leakage:
        kept = " (the existing split of that name is unchanged)" if part_path(cfg.dataset, cfg.name).is_file() else ""
        raise SplitFailed(f"leakage found: split {cfg.name!r} of {cfg.dataset} not written{kept}; "
                          f"see {md_path}, or pass allow_leakage=true")

    target = part_path(cfg.dataset, cfg.name)
    params = params_of(cfg, len(ids))
    note = replacement_note(cfg, params, new)
    atomic.write_parquet(new, target, {leakage.PARAMS_KEY: json.dumps(params)})
    catalog.refresh()
    if outdated:
        console.print(f"[yellow]the split this replaces no longer covered its dataset: {outdated}[/]",
                      highlight=False, soft_wrap=True)
    if note:
        console.print(f"[yellow]{note}[/]", highlight=False)
    console.print(f"wrote {target}", highlight=False)
    return 0


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    cfg = parse_config(SplitConfig, pairs)
    try:
        return run(cfg, make_console())
    except SplitFailed as err:
        fail(str(err), code=1)


if __name__ == "__main__":
    run_main(main)
