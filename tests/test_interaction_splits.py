"""Interaction splits: deterministic, leak-free at the (user, track) pair, leave-last-out holds
out the latest pair, single-pair users and cold tracks are counted, a rerun reads the same pairs."""
from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pyarrow as pa
import pytest

from lake import interaction_splits as isplit
from lake import interactions
from lake.schemas import INTERACTIONS
from tests.test_interactions import write_tracks


def log(rows: list[tuple[str, str, int]]) -> pa.Table:
    n = len(rows)
    return pa.table({
        "dataset": ["rec"] * n, "user_id": [r[0] for r in rows], "track_id": [r[1] for r in rows],
        "weight": [1.0] * n,
        "ts": [datetime.fromtimestamp(r[2], timezone.utc) for r in rows], "synthetic": [False] * n,
    }).cast(INTERACTIONS)


def test_leave_last_out_holds_out_each_users_latest_pair_and_counts_the_rest():
    rows = [("a", "t1", 10), ("a", "t2", 30), ("a", "t3", 20), ("a", "t1", 40),   # t1 replayed last
            ("b", "t2", 5), ("b", "t4", 50), ("c", "t1", 1),                          # t4 only in test
            ("d", "t3", 1)]                                                           # one pair: train only
    split = isplit.assign(isplit.pairs_of(log(rows)), isplit.SplitConfig("rec", "last"))
    test = {(u, t) for u, t, p in split.iter_rows() if p == "test"}
    assert test == {("a", "t1"), ("b", "t4")}
    summary = isplit.summarise(split)
    assert (summary.users, summary.pairs, summary.test_pairs) == (4, 7, 2)
    assert summary.users_train_only == 2               # c and d
    assert (summary.cold_test_tracks, summary.cold_test_pairs) == (1, 1)


def test_fraction_split_is_seeded_and_never_puts_a_held_out_pair_in_train():
    rows = [(f"u{u}", f"t{(u * 7 + i) % 40}", i) for u in range(30) for i in range(10)]
    pairs = isplit.pairs_of(log(rows))
    cfg = isplit.SplitConfig("rec", "f", method="fraction", fraction=0.3, seed=1)
    first = isplit.assign(pairs, cfg)
    assert first.equals(isplit.assign(pairs, cfg))
    assert not first.equals(isplit.assign(pairs, isplit.SplitConfig("rec", "f", method="fraction", fraction=0.3, seed=2)))
    assert first.select("user_id", "track_id").is_duplicated().sum() == 0   # each pair in exactly one part
    held = first.filter(pl.col("part") == "test").group_by("user_id").len()
    assert held.height == 30 and (held["len"] == 3).all()


def test_stored_split_reads_back_the_same_pairs_and_unknown_name_is_one_line():
    write_tracks("rec", n_per_culture=30)
    assert interactions.main(["dataset=rec", "users_per_culture=3", "tracks_per_user=10"]) == 0
    assert interactions.main(["dataset=rec", "split=last"]) == 0
    stored = isplit.load("rec", "last").sort(["user_id", "track_id"])
    made, _ = isplit.make(isplit.SplitConfig("rec", "last"))
    assert stored.equals(made)
    assert (stored.filter(pl.col("part") == "test").group_by("user_id").len()["len"] == 1).all()
    with pytest.raises(ValueError, match="interaction_split='nope' does not exist.*split=nope"):
        isplit.load("rec", "nope")
