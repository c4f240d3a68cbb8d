"""Unit tests of the profile queries on rows built here, registered under the view names."""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from lake import catalog, queries


def connection(tracks: list[dict], embeddings: list[dict] | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    columns = ("dataset", "track_id", "sha256", "label", "culture", "affect_label", "speaker_id", "split")
    con.register("tracks", pa.table({c: pa.array([r.get(c) for r in tracks], pa.string()) for c in columns}))
    if embeddings is not None:
        emb_cols = ("dataset", "backbone", "track_id", "sha256", "layer")
        table = {c: pa.array([r.get(c) for r in embeddings], pa.string()) for c in emb_cols}
        table["emb"] = pa.array([[1.0, 0.0] for _ in embeddings], pa.list_(pa.float32()))
        con.register("stored_embeddings", pa.table(table))
        for view in catalog.EMBEDDINGS_VIEWS:  # `embeddings`: the rows of current audio, as in the lake
            con.execute(view)
    return con


TRACKS = [
    {"dataset": "d", "track_id": "1", "label": "rock", "culture": "west"},
    {"dataset": "d", "track_id": "2", "label": "rock", "speaker_id": ""},
    {"dataset": "d", "track_id": "3", "label": "folk", "speaker_id": "s1"},
    {"dataset": "d", "track_id": "4", "label": "", "culture": "raga"},
    {"dataset": "other", "track_id": "9", "label": "jazz", "split": "train"},
]


def test_class_balance_counts_missing_apart_and_leaves_empty_columns_out():
    rows = queries.run_file(connection(TRACKS), "class_balance", dataset="d", column="all").to_pylist()
    assert rows == [
        {"column_name": "culture", "value": "raga", "clips": 1, "share": 0.25},
        {"column_name": "culture", "value": "west", "clips": 1, "share": 0.25},
        {"column_name": "culture", "value": None, "clips": 2, "share": 0.5},
        {"column_name": "label", "value": "rock", "clips": 2, "share": 0.5},
        {"column_name": "label", "value": "folk", "clips": 1, "share": 0.25},
        {"column_name": "label", "value": None, "clips": 1, "share": 0.25},   # '' counts as missing
        {"column_name": "speaker_id", "value": "s1", "clips": 1, "share": 0.25},
        {"column_name": "speaker_id", "value": None, "clips": 3, "share": 0.75},
    ]  # affect_label and split have no value in dataset d: left out


def test_class_balance_of_one_column_binds_its_name_as_a_value():
    con = connection(TRACKS)
    rows = queries.run_file(con, "class_balance", dataset="d", column="label").to_pylist()
    assert [(r["value"], r["clips"]) for r in rows] == [("rock", 2), ("folk", 1), (None, 1)]
    assert queries.run_file(con, "class_balance", dataset="d", column="label; DROP TABLE x").num_rows == 0
    assert queries.run_file(con, "class_balance", dataset="other", column="split").to_pylist() == [
        {"column_name": "split", "value": "train", "clips": 1, "share": 1.0}]


def test_embedding_coverage_per_backbone():
    tracks = [{"dataset": "d", "track_id": t, "sha256": f"h{t}"} for t in ("1", "2", "3", "4")]
    tracks.append({"dataset": "e", "track_id": "5", "sha256": "h5"})
    vectors = [
        # bb1: track 1 in two layers (one clip), track 2 from audio that changed since, orphan 9
        {"dataset": "d", "backbone": "bb1", "track_id": "1", "sha256": "h1", "layer": "0"},
        {"dataset": "d", "backbone": "bb1", "track_id": "1", "sha256": "h1", "layer": "1"},
        {"dataset": "d", "backbone": "bb1", "track_id": "2", "sha256": "old", "layer": "0"},
        {"dataset": "d", "backbone": "bb1", "track_id": "9", "sha256": "h9", "layer": "0"},
        # bb2: every clip; a vector without a recorded sha256 is not stale
        *({"dataset": "d", "backbone": "bb2", "track_id": t, "sha256": None if t == "4" else f"h{t}", "layer": "last"}
          for t in ("1", "2", "3", "4")),
        {"dataset": "e", "backbone": "bb3", "track_id": "5", "sha256": "h5", "layer": "last"},
    ]
    rows = queries.run_file(connection(tracks, vectors), "embedding_coverage", dataset="d").to_pylist()
    assert rows == [
        {"backbone": "bb1", "clips": 4, "with_vectors": 1, "stale_vectors": 1, "without_vectors": 2, "coverage": 0.25,
         "orphan_vectors": 1},
        {"backbone": "bb2", "clips": 4, "with_vectors": 4, "stale_vectors": 0, "without_vectors": 0, "coverage": 1.0,
         "orphan_vectors": 0},
    ]


@pytest.mark.parametrize("name", ["class_balance", "embedding_coverage"])
def test_header_names_purpose_and_every_parameter(name):
    text = queries.resolve(name).read_text()
    assert text.startswith("-- purpose: ")
    for param in queries.parameters(text):
        assert f"-- ${param}: " in text
