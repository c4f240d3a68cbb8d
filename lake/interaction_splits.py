"""Held-out interactions for a recommender: a named, seeded split of a dataset's (user, track)
pairs into train and test, stored in `interaction_splits` so a rerun evaluates the same pairs.

    just interactions dataset=demo split=last                       # leave-last-out by ts
    just interactions dataset=demo split=frac20 method=fraction fraction=0.2 seed=0

The unit is the (user, track) pair, not the interaction row: a track a user played three times
is held out with all three plays, so no held-out pair can leak into train. `method=last` holds
out each user's `last` pairs with the latest time (the latest play of the pair; ties and
missing times broken by a seeded shuffle); `method=fraction` holds out a seeded
round(fraction × pairs) of each user's pairs. A user keeps at least one train pair: a user with
a single pair stays wholly in train and is counted (`users_train_only`), never silently dropped.
Tracks that appear only in test (cold for a collaborative model) are counted too.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from lake import atomic, catalog, paths
from lake.schemas import INTERACTION_SPLITS


@dataclass
class SplitConfig:
    dataset: str
    split: str                               # the name stored as split_name
    method: Literal["last", "fraction"] = "last"
    last: int = 1                            # method=last: pairs held out per user
    fraction: float = 0.2                    # method=fraction: share of each user's pairs held out
    seed: int = 0

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        paths.check_name("split", self.split)
        if self.method not in ("last", "fraction"):
            raise ValueError(f"method={self.method!r}: last or fraction")
        if not self.last >= 1:
            raise ValueError(f"last={self.last}: must be 1 or more")
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction={self.fraction}: must be between 0 and 1 (exclusive)")


@dataclass
class SplitSummary:
    users: int
    pairs: int
    test_pairs: int
    users_train_only: int        # users with too few pairs to hold any out
    cold_test_tracks: int        # tracks of test pairs that no train pair has
    cold_test_pairs: int

    def line(self) -> str:
        return (f"{self.pairs:,} (user, track) pairs of {self.users:,} users: {self.test_pairs:,} held out; "
                f"{self.users_train_only:,} users have too few pairs to hold one out (train only); "
                f"{self.cold_test_tracks:,} held-out tracks ({self.cold_test_pairs:,} pairs) never appear in train")


def pairs_of(interactions: pa.Table) -> pl.DataFrame:
    """One row per (user_id, track_id) with its latest time (null when no row has one)."""
    frame = pl.from_arrow(interactions.select(["user_id", "track_id", "ts"]))
    return frame.group_by(["user_id", "track_id"]).agg(pl.col("ts").max()).sort(["user_id", "track_id"])


def assign(pairs: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    """pairs + a `part` column (train | test). Deterministic: depends on the pairs and cfg.seed only."""
    rng = np.random.default_rng(cfg.seed)
    n = pairs.height
    tiebreak = rng.permutation(n)  # pairs are sorted, so the same seed shuffles the same way
    ts = pairs.get_column("ts").dt.epoch("us").fill_null(np.iinfo(np.int64).min).to_numpy()
    frame = pairs.with_columns(pl.Series("ts_key", ts), pl.Series("tiebreak", tiebreak))
    # Rank within user, latest first (method=last) or in a seeded random order (method=fraction).
    if cfg.method == "last":
        frame = frame.sort(["user_id", "ts_key", "tiebreak"], descending=[False, True, False])
    else:
        frame = frame.sort(["user_id", "tiebreak"])
    frame = frame.with_columns(pl.int_range(pl.len()).over("user_id").alias("order"),
                               pl.len().over("user_id").alias("count"))
    if cfg.method == "last":
        held = pl.min_horizontal(pl.lit(cfg.last), pl.col("count") - 1)
    else:
        held = pl.min_horizontal((pl.col("count") * cfg.fraction).round(0).cast(pl.Int64), pl.col("count") - 1)
    frame = frame.with_columns(pl.when(pl.col("order") < held).then(pl.lit("test")).otherwise(pl.lit("train"))
                               .alias("part"))
    return frame.select(["user_id", "track_id", "part"]).sort(["user_id", "track_id"])


def summarise(split: pl.DataFrame) -> SplitSummary:
    test = split.filter(pl.col("part") == "test")
    train_tracks = split.filter(pl.col("part") == "train").get_column("track_id").unique()
    cold = test.filter(~pl.col("track_id").is_in(train_tracks.implode()))
    users_with_test = test.get_column("user_id").n_unique()
    users = split.get_column("user_id").n_unique()
    return SplitSummary(users=users, pairs=split.height, test_pairs=test.height,
                        users_train_only=users - users_with_test,
                        cold_test_tracks=cold.get_column("track_id").n_unique(), cold_test_pairs=cold.height)


def read_interactions(dataset: str) -> pa.Table:
    con = catalog.connect()
    return con.sql("SELECT user_id, track_id, ts FROM interactions WHERE dataset = $d",
                   params={"d": dataset}).to_arrow_table()


def make(cfg: SplitConfig) -> tuple[pl.DataFrame, SplitSummary]:
    rows = read_interactions(cfg.dataset)
    if not rows.num_rows:
        raise ValueError(f"dataset={cfg.dataset} has no interactions: run just interactions dataset={cfg.dataset} "
                         "(synthetic) or import= a log")
    split = assign(pairs_of(rows), cfg)
    return split, summarise(split)


def write(split: pl.DataFrame, cfg: SplitConfig, summary: SplitSummary) -> str:
    n = split.height
    table = pa.table({
        "dataset": pa.array([cfg.dataset] * n, pa.string()),
        "split_name": pa.array([cfg.split] * n, pa.string()),
        "user_id": split.get_column("user_id").to_arrow().cast(pa.string()),
        "track_id": split.get_column("track_id").to_arrow().cast(pa.string()),
        "part": split.get_column("part").to_arrow().cast(pa.string()),
    }, schema=INTERACTION_SPLITS)
    target = paths.partition_dir("interaction_splits", dataset=cfg.dataset, split_name=cfg.split) / "part-0.parquet"
    atomic.write_parquet(table, target, {"audiolake.interaction_split.config": json.dumps(asdict(cfg)),
                                         "audiolake.interaction_split.summary": json.dumps(asdict(summary))})
    catalog.refresh()
    return str(target)


def load(dataset: str, name: str) -> pl.DataFrame:
    """(user_id, track_id, part) of a stored split; a missing one is a one-line ValueError naming it."""
    con = catalog.connect()
    names = [n for (n,) in con.execute("SELECT DISTINCT split_name FROM interaction_splits WHERE dataset = $d "
                                       "ORDER BY 1", {"d": dataset}).fetchall()]
    if name not in names:
        raise ValueError(f"interaction_split={name!r} does not exist for dataset {dataset} "
                         f"(interaction splits: {', '.join(names) or 'none'}); make it with: "
                         f"just interactions dataset={dataset} split={name}")
    rows = con.sql("SELECT user_id, track_id, part FROM interaction_splits WHERE dataset = $d AND split_name = $n",
                   params={"d": dataset, "n": name}).to_arrow_table()
    return pl.from_arrow(rows)
