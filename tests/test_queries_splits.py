"""The split and leakage queries, each on rows built here and registered under the view names."""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from lake import queries


def connection(tracks: list[dict], splits: list[tuple[str, str]], split_name: str = "s1") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("tracks", pa.Table.from_pylist([{"dataset": "d", **t} for t in tracks]))
    rows = [{"dataset": "d", "split_name": split_name, "track_id": t, "split": s} for t, s in splits]
    # another named split and another dataset beside it: the queries must not mix them in
    rows += [{"dataset": "d", "split_name": "other", "track_id": t, "split": "test"} for t, _ in splits]
    rows += [{"dataset": "e", "split_name": split_name, "track_id": t, "split": "val"} for t, _ in splits]
    con.register("splits", pa.Table.from_pylist(rows))
    return con


TRACKS = [
    {"track_id": "a", "sha256": "h1", "label": "rock", "culture": "west", "speaker_id": "s1", "rank": 1},
    {"track_id": "b", "sha256": "h1", "label": "rock", "culture": "west", "speaker_id": "s2", "rank": 2},
    {"track_id": "c", "sha256": "h2", "label": "folk", "culture": "west", "speaker_id": "s1", "rank": 1},
    {"track_id": "d", "sha256": "h3", "label": None, "culture": "raga", "speaker_id": None, "rank": 3},
    {"track_id": "e", "sha256": "h4", "label": "folk", "culture": "raga", "speaker_id": "s3", "rank": 2},
    {"track_id": "f", "sha256": "h4", "label": "folk", "culture": "raga", "speaker_id": "s3", "rank": 2},
    {"track_id": "g", "sha256": "h5", "label": "rock", "culture": "west", "speaker_id": None, "rank": 1},
]
SPLIT = [("a", "train"), ("b", "test"), ("c", "val"), ("d", "train"), ("e", "train"), ("f", "train"), ("g", "val")]


def test_split_summary_counts_each_split_per_stratum_and_in_all():
    con = connection(TRACKS, SPLIT)
    rows = queries.run_file(con, "split_summary", dataset="d", split_name="s1", stratify="label, culture").to_pylist()
    as_tuples = [(r["stratum"], r["split"], r["tracks"], r["share_of_stratum"]) for r in rows]
    assert as_tuples == [
        ("(all)", "train", 4, 0.5714), ("(all)", "val", 2, 0.2857), ("(all)", "test", 1, 0.1429),
        ("(none) · raga", "train", 1, 1.0),
        ("folk · raga", "train", 2, 1.0),
        ("folk · west", "val", 1, 1.0),
        ("rock · west", "train", 1, 0.3333), ("rock · west", "val", 1, 0.3333), ("rock · west", "test", 1, 0.3333),
    ]
    # a non-text column stratifies too; `dataset` is the no-strata form
    by_rank = queries.run_file(con, "split_summary", dataset="d", split_name="s1", stratify="rank").to_pylist()
    assert {(r["stratum"], r["split"]): r["tracks"] for r in by_rank}[("2", "train")] == 2
    whole = queries.run_file(con, "split_summary", dataset="d", split_name="s1", stratify="dataset").to_pylist()
    assert {r["stratum"] for r in whole} == {"(all)", "d"}


def test_split_summary_names_a_misspelt_column():
    con = connection(TRACKS, SPLIT)
    with pytest.raises(duckdb.Error, match="no column nope"):
        queries.run_file(con, "split_summary", dataset="d", split_name="s1", stratify="label,nope")


def test_duplicate_audio_leakage_lists_only_hashes_spread_over_splits():
    con = connection(TRACKS, SPLIT)
    rows = queries.run_file(con, "duplicate_audio_leakage", dataset="d", split_name="s1").to_pylist()
    # h1 is in train and test; h4's two copies are both in train, which is fine
    assert rows == [{"sha256": "h1", "tracks": 2, "splits": ["test", "train"], "track_ids": ["b", "a"]}]
    clean = connection(TRACKS, [(t, "train") for t, _ in SPLIT])
    assert queries.run_file(clean, "duplicate_audio_leakage", dataset="d", split_name="s1").num_rows == 0


def test_group_leakage_takes_the_column_as_a_bound_name():
    con = connection(TRACKS, SPLIT)
    rows = queries.run_file(con, "group_leakage", dataset="d", split_name="s1", group_column="speaker_id").to_pylist()
    assert rows == [{"group_value": "s1", "tracks": 2, "train": 1, "val": 1, "test": 0,
                     "splits": ["train", "val"], "track_ids": ["a", "c"]}]
    # NULL is no group: d and g (speaker NULL) in different splits are not leakage
    by_culture = queries.run_file(con, "group_leakage", dataset="d", split_name="s1", group_column="culture")
    assert [r["group_value"] for r in by_culture.to_pylist()] == ["west"]
    # a value that is SQL is only a name that matches no column
    with pytest.raises(duckdb.Error, match="empty set of columns"):
        queries.run_file(con, "group_leakage", dataset="d", split_name="s1", group_column="label; DROP VIEW tracks")
    assert con.execute("SELECT count(*) FROM tracks").fetchone() == (7,)
