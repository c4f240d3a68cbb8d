"""`just interactions dataset=NAME ...` — weak user interactions when a dataset has no logs,
or real logs imported from CSV/Parquet, into the `interactions` table.

    just interactions dataset=demo users_per_culture=20 tracks_per_user=50 seed=0
    just interactions dataset=demo own_culture_prob=0.6 popularity_alpha=1.2 genre_taste=2
    just interactions dataset=demo import=plays.csv [allow_unknown=true]
    just interactions dataset=demo split=last [method=last|fraction fraction=0.2 seed=0]

`split=NAME` stores held-out (user, track) pairs as a named interaction split (see
lake/interaction_splits.py) instead of writing interactions.

The generator (seed 000's "weak interactions"): every culture in the dataset's tracks gets
`users_per_culture` users (no culture values: one group, "all"). Each pick of a user is a
track of the user's own culture with probability `own_culture_prob` (Binomial count, so the
measured own-culture share estimates it), else of another culture. Within each pool, tracks
are drawn without replacement with probability proportional to popularity × taste:
popularity is a seeded Zipf-like `rank ** -popularity_alpha` over a random ranking of the
tracks; taste multiplies the user's `genre_taste` liked labels by `taste_boost`. Drawing is
the Gumbel top-k trick over a users × tracks matrix per culture, so there is no per-row
Python and no duplicate (user, track) pair. `weight` is a play count (1 + Poisson, higher for
liked labels), `ts` a seeded time in 2024, `synthetic` is true on every row.

Storage: `tables/interactions/dataset=<d>/part-synthetic.parquet` (regenerating replaces it)
and one `part-import-<file stem>.parquet` per imported file (re-importing replaces it), each
written atomically. Imported rows are `synthetic=false`; track ids not in `tracks` fail the
import unless `allow_unknown=true`, which drops those rows and says how many.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from lake import atomic, catalog, interaction_splits, paths
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.schemas import INTERACTIONS
from lake.errors import one_line

EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
YEAR_S = 365 * 86400
NO_CULTURE = "all"


@dataclass
class GenerateConfig:
    dataset: str
    users_per_culture: int = 20
    tracks_per_user: int = 50
    seed: int = 0
    own_culture_prob: float = 0.8
    popularity_alpha: float = 1.0   # Zipf exponent of track popularity; 0: uniform
    genre_taste: int = 2            # labels each user prefers
    taste_boost: float = 4.0        # how much more likely a liked label's track is picked

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        for key in ("users_per_culture", "tracks_per_user"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be at least 1")
        if not 0.0 <= self.own_culture_prob <= 1.0:
            raise ValueError(f"own_culture_prob={self.own_culture_prob}: must be within 0..1")
        if self.popularity_alpha < 0 or self.genre_taste < 0 or self.taste_boost <= 0:
            raise ValueError("popularity_alpha and genre_taste must be >= 0, taste_boost > 0")


@dataclass
class ImportConfig:
    dataset: str
    allow_unknown: bool = False     # drop rows whose track id is not in tracks instead of failing

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)


class InteractionsError(Exception):
    """Bad input (file, rows, dataset): the message names it."""


def dataset_tracks(dataset: str) -> pa.Table:
    con = catalog.connect()
    # One row per id even if tracks repeats one (validate reports that), so no pair repeats.
    table = con.sql("SELECT track_id, any_value(culture) AS culture, any_value(label) AS label FROM tracks "
                    "WHERE dataset = $dataset GROUP BY track_id ORDER BY track_id",
                    params={"dataset": dataset}).to_arrow_table()
    if not table.num_rows:
        raise InteractionsError(f"dataset {dataset!r} has no tracks: ingest it first")
    return table


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Sorted distinct non-empty values and each row's index into them (-1: none)."""
    column = pc.cast(column, pa.string())
    present = pc.fill_null(pc.not_equal(column, ""), False).to_numpy(zero_copy_only=False)
    names, inverse = np.unique(column.to_numpy(zero_copy_only=False)[present].astype(str), return_inverse=True)
    codes = np.full(len(column), -1)
    codes[present] = inverse
    return names.tolist(), codes


def _top_k(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's `counts[row]` largest keys."""
    order = np.argsort(-keys, axis=1, kind="stable")
    rows, ranks = np.nonzero(np.arange(keys.shape[1])[None, :] < counts[:, None])
    return rows, order[rows, ranks]


def generate(tracks: pa.Table, cfg: GenerateConfig) -> pa.Table:
    rng = np.random.default_rng(cfg.seed)
    ids = tracks.column("track_id").to_numpy(zero_copy_only=False)
    cultures, culture_code = _codes(tracks.column("culture"))
    labels, label_code = _codes(tracks.column("label"))
    n = len(ids)
    popularity = (rng.permutation(n) + 1.0) ** -cfg.popularity_alpha
    groups = cultures or [NO_CULTURE]
    k = min(cfg.tracks_per_user, n)
    taste = min(cfg.genre_taste, len(labels))
    users, picks, liked_pick = [], [], []
    for g, group in enumerate(groups):
        own = culture_code == g if cultures else np.ones(n, dtype=bool)
        pools = [np.flatnonzero(own), np.flatnonzero(~own)]
        u = cfg.users_per_culture
        n_own = rng.binomial(k, cfg.own_culture_prob if cultures else 1.0, size=u)
        n_own = np.clip(n_own, k - len(pools[1]), len(pools[0]))  # a pool too small: the other fills in
        liked = np.zeros((u, len(labels) + 1), dtype=bool)       # last column: tracks without a label
        if taste:
            chosen = np.argsort(rng.random((u, len(labels))), axis=1)[:, :taste]
            np.put_along_axis(liked, chosen, True, axis=1)
        user_ids = np.array([f"{group}-u{i:03d}" for i in range(u)], dtype=object)
        for pool, count in zip(pools, (n_own, k - n_own)):
            if not len(pool):
                continue
            likes = liked[:, label_code[pool]]                   # users × pool
            weight = popularity[pool][None, :] * np.where(likes, cfg.taste_boost, 1.0)
            keys = np.log(weight) + rng.gumbel(size=weight.shape)  # Gumbel top-k = weighted draw w/o replacement
            rows, cols = _top_k(keys, count)
            users.append(user_ids[rows])
            picks.append(pool[cols])
            liked_pick.append(likes[rows, cols])
    user = np.concatenate(users)
    track = np.concatenate(picks)
    liked_any = np.concatenate(liked_pick)
    plays = 1.0 + rng.poisson(np.where(liked_any, 3.0, 1.0))
    ts = EPOCH.timestamp() * 1e6 + rng.integers(0, YEAR_S, size=len(user)) * 1e6
    order = np.lexsort((ts, user))
    return pa.Table.from_arrays([
        pa.array(np.full(len(user), cfg.dataset, dtype=object), pa.string()),
        pa.array(user[order], pa.string()),
        pa.array(ids[track[order]], pa.string()),
        pa.array(plays[order], pa.float64()),
        pa.array(ts[order].astype(np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array(np.ones(len(user), dtype=bool)),
    ], schema=INTERACTIONS)


def part_path(dataset: str, name: str) -> Path:
    return paths.partition_dir("interactions", dataset=dataset) / f"part-{name}.parquet"


def read_log(file: Path) -> pa.Table:
    """A CSV or Parquet log with user_id, track_id[, weight][, ts], typed to the schema."""
    if not file.is_file():
        raise InteractionsError(f"import={file}: no such file")
    try:
        if file.suffix.lower() == ".csv":
            types = {"user_id": pa.string(), "track_id": pa.string(), "weight": pa.float64()}
            raw = pa_csv.read_csv(file, convert_options=pa_csv.ConvertOptions(column_types=types))
        elif file.suffix.lower() == ".parquet":
            raw = pq.read_table(file)
        else:
            raise InteractionsError(f"import={file}: expected a .csv or .parquet file")
    except (pa.ArrowInvalid, OSError) as err:
        raise InteractionsError(f"import={file}: not readable: {one_line(err)}") from None
    missing = [c for c in ("user_id", "track_id") if c not in raw.column_names]
    if missing:
        raise InteractionsError(f"import={file}: missing column {', '.join(missing)} (has: {', '.join(raw.column_names)})")
    first_row = 2 if file.suffix.lower() == ".csv" else 0  # as a person counts lines of the file

    def bad(mask: pa.Array, what: str) -> None:
        if pc.any(mask).as_py():
            at = pc.index(mask, True).as_py()
            raise InteractionsError(f"import={file} row {at + first_row}: {what}")

    columns = {}
    for name in ("user_id", "track_id"):
        col = pc.cast(raw.column(name), pa.string())
        bad(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), True), f"{name} is empty")
        columns[name] = col
    n = raw.num_rows
    weight = pc.cast(raw.column("weight"), pa.float64()) if "weight" in raw.column_names else pa.array(np.ones(n))
    bad(pc.fill_null(pc.invert(pc.and_(pc.is_finite(weight), pc.greater_equal(weight, 0.0))), True),
        "weight must be a finite number >= 0")
    columns["weight"] = weight
    columns["ts"] = _timestamps(raw.column("ts"), file) if "ts" in raw.column_names else \
        pa.nulls(n, pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def _timestamps(col: pa.ChunkedArray, file: Path) -> pa.ChunkedArray:
    """ISO-8601 text, a timestamp (naive means UTC), or whole seconds since the Unix epoch."""
    target = pa.timestamp("us", tz="UTC")
    try:
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            micros = pc.round(pc.multiply(pc.cast(col, pa.float64()), 1e6))
            return pc.cast(micros, pa.int64()).cast(target)
        if pa.types.is_timestamp(col.type):
            return col.cast(pa.timestamp(col.type.unit, tz=col.type.tz or "UTC")).cast(target)
        try:
            return pc.cast(col, target)
        except pa.ArrowInvalid:  # text without a zone offset: read as UTC
            return pc.cast(col, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise InteractionsError(f"import={file}: ts is not a time (ISO 8601 or epoch seconds): "
                                f"{one_line(err)}") from None


def import_log(file: Path, cfg: ImportConfig) -> tuple[pa.Table, list[str], int]:
    """The rows to write, the unknown track ids (distinct), and how many rows named them."""
    log = read_log(file)
    known = dataset_tracks(cfg.dataset).column("track_id")
    is_known = pc.is_in(log.column("track_id"), value_set=known)
    unknown_rows = log.num_rows - pc.sum(is_known).as_py() if log.num_rows else 0
    unknown = sorted(pc.unique(pc.filter(log.column("track_id"), pc.invert(is_known))).to_pylist())
    if unknown and not cfg.allow_unknown:
        raise InteractionsError(
            f"import={file}: {unknown_rows} of {log.num_rows} rows name {len(unknown)} track ids not in tracks "
            f"of dataset={cfg.dataset}, e.g. {', '.join(unknown[:5])}: fix the file, or pass allow_unknown=true "
            "to drop those rows")
    log = log.filter(is_known)
    n = log.num_rows
    table = pa.table({"dataset": pa.array([cfg.dataset] * n, pa.string()), **{c: log.column(c) for c in log.column_names},
                      "synthetic": pa.array(np.zeros(n, dtype=bool))}).select(INTERACTIONS.names).cast(INTERACTIONS)
    return table, unknown, unknown_rows


def write(table: pa.Table, dataset: str, name: str, metadata: dict[str, str]) -> Path:
    target = atomic.write_parquet(table, part_path(dataset, name), metadata)
    catalog.refresh()
    return target


def own_culture_share(table: pa.Table, tracks: pa.Table) -> dict[str, tuple[int, int, float]]:
    """Per user group (the user id's culture prefix): users, rows, share of rows on own-culture tracks."""
    import polars as pl

    rows = pl.from_arrow(table.select(["user_id", "track_id"])).join(
        pl.from_arrow(tracks.select(["track_id", "culture"])).unique("track_id"), on="track_id", how="left")
    rows = rows.with_columns(pl.col("user_id").str.replace(r"-u\d+$", "").alias("group"))
    summary = rows.group_by("group").agg(pl.col("user_id").n_unique().alias("users"), pl.len().alias("rows"),
                                         (pl.col("culture") == pl.col("group")).mean().alias("own")).sort("group")
    return {r["group"]: (r["users"], r["rows"], float(r["own"] or 0.0)) for r in summary.iter_rows(named=True)}


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    console = make_console()
    try:
        if "import" in pairs:
            return main_import(Path(pairs.pop("import")).expanduser(), pairs, console)
        if "split" in pairs:
            return main_split(parse_config(interaction_splits.SplitConfig, pairs), console)
        return main_generate(parse_config(GenerateConfig, pairs, ignore=("import",)), console)
    except InteractionsError as err:
        fail(str(err), code=1)


def main_split(cfg: "interaction_splits.SplitConfig", console: Console) -> int:
    try:
        split, summary = interaction_splits.make(cfg)
    except ValueError as err:
        raise InteractionsError(str(err)) from None
    target = interaction_splits.write(split, cfg, summary)
    console.print(f"interaction split {cfg.split} of {cfg.dataset} (method={cfg.method}, seed={cfg.seed}): "
                  f"{summary.line()}")
    console.print(f"wrote {_shown(Path(target))}", highlight=False)
    return 0


def main_generate(cfg: GenerateConfig, console: Console) -> int:
    tracks = dataset_tracks(cfg.dataset)
    table = generate(tracks, cfg)
    target = write(table, cfg.dataset, "synthetic", {"audiolake.interactions.config": json.dumps(asdict(cfg))})
    shares = own_culture_share(table, tracks)
    covered = pc.count_distinct(table.column("track_id")).as_py()
    counts = np.sort(pc.value_counts(table.column("track_id")).field("counts").to_numpy())[::-1]
    top = counts[:max(1, len(counts) // 10)].sum() / counts.sum()
    view = Table(title=f"synthetic interactions · {cfg.dataset}", header_style="bold")
    for name in ("users of culture", "users", "rows", "own-culture share"):
        view.add_column(name, justify="left" if name == "users of culture" else "right")
    for group, (users, rows, own) in shares.items():
        view.add_row(group, str(users), f"{rows:,}", "-" if group == NO_CULTURE else f"{own:.1%}")
    console.print(view)
    console.print(f"{table.num_rows:,} interactions by {sum(s[0] for s in shares.values())} users over "
                  f"{covered:,} of {tracks.num_rows:,} tracks; the 10% most chosen tracks hold {top:.0%} of rows "
                  f"(own_culture_prob={cfg.own_culture_prob:g}, popularity_alpha={cfg.popularity_alpha:g}, seed={cfg.seed})")
    for group, size in pool_sizes(tracks).items():
        wanted = min(cfg.tracks_per_user, tracks.num_rows) * cfg.own_culture_prob
        if group in shares and size < wanted:
            console.print(f"[yellow]{group}[/]: only {size} own-culture tracks for ~{wanted:.0f} own-culture picks "
                          f"per user, so its own-culture share is capped near {size / cfg.tracks_per_user:.0%}")
    console.print(f"wrote {_shown(target)}", highlight=False)
    return 0


def pool_sizes(tracks: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(pc.drop_null(tracks.column("culture"))).to_pylist()
    return {c["values"]: c["counts"] for c in counts if c["values"]}


def main_import(file: Path, pairs: dict[str, str], console: Console) -> int:
    generating = [k for k in pairs if k in GenerateConfig.__dataclass_fields__ and k not in ImportConfig.__dataclass_fields__]
    if generating:
        raise UsageError(f"{generating[0]}= generates interactions; it does not apply with import=")
    cfg = parse_config(ImportConfig, pairs, ignore=("import",))
    table, unknown, dropped = import_log(file, cfg)
    name = "import-" + re.sub(r"[^A-Za-z0-9_-]", "_", file.stem)
    target = write(table, cfg.dataset, name, {"audiolake.interactions.source": str(file)})
    ts = table.column("ts").drop_null()
    span = f", {pc.min(ts).as_py():%Y-%m-%d} to {pc.max(ts).as_py():%Y-%m-%d}" if len(ts) else ", no timestamps"
    console.print(f"{cfg.dataset}: imported {table.num_rows:,} interactions (synthetic=false) by "
                  f"{pc.count_distinct(table.column('user_id')).as_py():,} users over "
                  f"{pc.count_distinct(table.column('track_id')).as_py():,} tracks{span}")
    if unknown:
        console.print(f"[yellow]dropped {dropped} rows[/] naming {len(unknown)} track ids not in tracks "
                      f"(allow_unknown=true), e.g. {', '.join(unknown[:5])}")
    console.print(f"wrote {_shown(target)}", highlight=False)
    return 0


if __name__ == "__main__":
    run_main(main)
