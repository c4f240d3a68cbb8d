"""The heads' shared loader on hand-written lakes: joins, fusion, typed columns, aligned
interactions, every way a selection fails, and the data fingerprint."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest

from heads import probe
from heads.data import Selection, SelectionError, load
from heads.protocol import Inputs
from heads.testing import toy_lake, write_embeddings, write_split, write_tracks
from lake import atomic, paths
from lake.schemas import INTERACTIONS

LABEL = Inputs(columns={"target": "label"}, required=("target",))


def sel(**keys) -> Selection:
    return Selection(**{"dataset": "toy", "backbone": "fake", "target": "label", **keys})


def probe_data(**keys):
    """What the probe sees: the loader with its inputs, then its own target checks."""
    cfg = probe.Config(**{"dataset": "toy", "backbone": "fake", "target": "label", **keys})
    data = load(cfg, probe.inputs(cfg))
    probe.describe(cfg, data)
    return data


def test_rows_align_with_the_vectors_whatever_order_the_parts_hold():
    lake = toy_lake(n=60)
    data = load(sel(), LABEL)
    assert list(data.track_ids) == sorted(lake["ids"])
    order = np.argsort(lake["ids"])
    assert np.array_equal(data.features("last"), lake["X"][order])
    assert list(data.column("label")) == [f"c{k}" for k in lake["y"][order]]
    assert data.counts() == {"train": 36, "val": 12, "test": 12}


def test_columns_keep_their_types_and_align_with_the_features():
    ids = [f"t{i:02d}" for i in range(12)]
    shuffled = list(np.random.default_rng(1).permutation(ids))
    rows = [{"track_id": t, "score": None if i == 5 else 50.0 + i / 4, "rank": None if i == 5 else i % 4 + 1,
             "speaker_id": None if i == 7 else f"s{i % 3}", "terms": [f"term{i}", "common"] if i % 2 else [],
             "text": f"clip {i}"} for i, t in ((int(t[1:]), t) for t in shuffled)]
    write_tracks("typed", rows)
    write_split("typed", "default", {t: ("train", "train", "val")[int(t[1:]) % 3] for t in ids})
    vectors = np.arange(12, dtype=np.float32)[:, None] * [1, -1]
    write_embeddings("typed", "fake", ids[::-1], {"last": vectors[::-1]})

    inputs = Inputs(columns={"target": "score", "rank": "rank", "speaker": "speaker_id", "terms": "terms",
                             "text": "text"})
    data = load(Selection(dataset="typed", backbone="fake"), inputs)
    assert list(data.track_ids) == ids and data.dropped_null == 0
    assert np.array_equal(data.features("last")[:, 0], np.arange(12))  # row i is track t{i:02d} everywhere
    score = data.column("score")
    assert score.dtype == np.float64 and np.isnan(score[5]) and score[6] == 51.5
    assert data.column("rank").dtype == np.float64 and data.column("rank")[6] == 3  # NULLs make it float, NaN
    speaker = data.column("speaker_id")
    assert speaker.dtype == object and speaker[7] is None and speaker[4] == "s1"
    assert list(data.column("terms")[3]) == ["term3", "common"] and len(data.column("terms")[2]) == 0
    assert data.column("text")[11] == "clip 11"
    assert data.types["score"] == "DOUBLE" and data.types["terms"] == "VARCHAR[]"

    required = load(Selection(dataset="typed", backbone="fake"),
                    Inputs(columns={"target": "score", "speaker": "speaker_id"}, required=("target", "speaker")))
    assert required.dropped_null == 2 and "t05" not in required.track_ids and "t07" not in required.track_ids
    assert np.array_equal(required.features("last")[:, 0], [i for i in range(12) if i not in (5, 7)])
    assert not np.isnan(required.column("score")).any()


def test_interactions_arrive_as_positions_in_the_selection():
    lake = toy_lake(n=30)
    stamp = lambda day: datetime(2024, 1, day, tzinfo=timezone.utc)  # noqa: E731
    rows = [("u2", lake["ids"][3], 2.0, stamp(2)), ("u1", lake["ids"][7], 1.0, stamp(5)),
            ("u1", lake["ids"][0], 3.0, stamp(1)), ("u2", "not_selected", 1.0, stamp(1))]
    table = pa.Table.from_pylist([{"dataset": "toy", "user_id": u, "track_id": t, "weight": w, "ts": ts,
                                   "synthetic": False} for u, t, w, ts in rows], schema=INTERACTIONS)
    atomic.write_parquet(table, paths.partition_dir("interactions", dataset="toy") / "part-import-x.parquet")
    data = load(sel(where="track_id <> 'toy_00005'"), LABEL)

    got = data.interactions()
    assert list(got.users) == ["u1", "u2"] and got.outside == 1
    assert list(got.user) == [0, 0, 1] and list(got.weight) == [3.0, 1.0, 2.0]  # by user, then time
    assert [data.track_ids[i] for i in got.track] == [lake["ids"][0], lake["ids"][7], lake["ids"][3]]
    assert got.ts.dtype == np.dtype("datetime64[us]") and not got.synthetic.any()


def test_tables_a_head_reads_join_the_fingerprint_once():
    lake = toy_lake(n=30)
    write = lambda weight: atomic.write_parquet(pa.Table.from_pylist(  # noqa: E731
        [{"dataset": "toy", "user_id": "u1", "track_id": lake["ids"][1], "weight": weight,
          "ts": datetime(2024, 1, 1, tzinfo=timezone.utc), "synthetic": False}], schema=INTERACTIONS),
        paths.partition_dir("interactions", dataset="toy") / "part-import-x.parquet")
    write(1.0)
    data = load(sel(), LABEL)
    alone = data.fingerprint
    data.interactions()
    with_interactions = data.fingerprint
    data.interactions()  # a second seed reads them again: same data, same hash
    assert with_interactions == data.fingerprint != alone

    write(2.0)  # another weight: another hash
    other = load(sel(), LABEL)
    other.interactions()
    assert other.fingerprint not in (alone, with_interactions)
    with pytest.raises(ValueError, match="the interactions table changed while this run was reading it"):
        data.interactions()  # the first run's table moved under it


def test_a_covered_table_hashes_by_its_rows_not_its_chunks():
    toy_lake(n=20)
    table = pa.table({"user": list(range(6)), "weight": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=2))
    assert rechunked.column("user").num_chunks == 3
    one, other = load(sel(), LABEL), load(sel(), LABEL)
    one.cover("interactions", table)
    other.cover("interactions", rechunked)
    assert one.fingerprint == other.fingerprint
    one.cover("interactions", rechunked)  # the same rows read again in other batches: not a change


def test_fused_backbones_join_on_track_id_and_concatenate():
    ids = [f"t{i:03d}" for i in range(30)]
    write_tracks("toy", [{"track_id": t, "label": "ab"[i % 2]} for i, t in enumerate(ids)])
    write_split("toy", "default", {t: ("train", "train", "val")[i % 3] for i, t in enumerate(ids)})
    index = np.arange(30, dtype=np.float32)[:, None]
    shuffled = np.random.default_rng(0).permutation(30)
    write_embeddings("toy", "four", [ids[i] for i in shuffled], {"last": np.hstack([index, -index, index, index])[shuffled]})
    write_embeddings("toy", "six", ids[::-1], {"last": np.repeat(index[::-1] * 10, 6, axis=1)})

    data = load(sel(backbone="four,six"))
    X = data.features("last")
    assert X.shape == (30, 4 + 6) and data.dims == {"four": 4, "six": 6}
    assert np.array_equal(X[:, 0], np.arange(30)) and np.array_equal(X[:, 4], 10 * np.arange(30))


def test_where_and_select_narrow_the_selection_and_null_targets_are_counted(tmp_path):
    toy_lake(n=60)
    data = load(sel(where="speaker_id IN ('s0', 's1', 's2')"), LABEL)
    assert set(data.track_ids) == {f"toy_{i:05d}" for i in range(60) if i % 7 in (0, 1, 2)}

    query = tmp_path / "some.sql"
    query.write_text("SELECT track_id FROM tracks WHERE dataset = $dataset AND CAST(substr(track_id, 5) AS INTEGER) % 2 = 0")
    assert len(load(sel(select=str(query)), LABEL).track_ids) == 30

    ids = [f"t{i}" for i in range(12)]
    write_tracks("nulls", [{"track_id": t, "label": None if i < 3 else "ab"[i % 2]} for i, t in enumerate(ids)])
    write_split("nulls", "default", {t: "train" if i < 9 else "val" for i, t in enumerate(ids)})
    write_embeddings("nulls", "fake", ids, {"last": np.ones((12, 2), np.float32)})
    data = load(sel(dataset="nulls"), LABEL)
    assert data.dropped_null == 3 and len(data.track_ids) == 9


def test_an_empty_selection_is_one_clear_error():
    toy_lake()
    with pytest.raises(SelectionError, match="the selection is empty.*where="):
        load(sel(where="speaker_id = 'nobody'"))


def test_a_class_missing_from_train_is_named():
    lake = toy_lake(n=60)
    train_c2 = [t for t, k, s in zip(lake["ids"], lake["y"], lake["split"]) if k == 2 and s == "train"]
    write_split("toy", "no_c2", {t: "val" if t in train_c2 else s for t, s in zip(lake["ids"], lake["split"])})
    with pytest.raises(SelectionError, match=r"missing from train: c2 \(test, val\)"):
        probe_data(split="no_c2")


def test_a_backbone_that_does_not_cover_the_selection_says_how_to_fix_it():
    lake = toy_lake(n=40)
    write_embeddings("toy", "partial", lake["ids"][3:], {"last": lake["X"][3:]})
    with pytest.raises(SelectionError, match=r"backbone=partial \(layer last\) has no vectors for 3 of 40 "
                                             r"selected tracks \(e\.g\. toy_00000, toy_00001, toy_00002\): "
                                             r"run just embed dataset=toy backbone=partial"):
        load(sel(backbone="fake,partial"))
    with pytest.raises(SelectionError, match="backbone=missing: no embeddings for dataset toy"):
        load(sel(backbone="missing"))


@pytest.mark.parametrize("keys, message", [
    ({"split": "nope"}, r"split='nope' does not exist for dataset toy \(splits: default\)"),
    ({"target": "genre"}, r"target='genre' is not a column of tracks \(columns: dataset, track_id"),
    ({"target": "culture"}, r"target=culture is NULL for all 100 selected tracks"),
    ({"dataset": "other"}, r"dataset='other' is not in the lake \(datasets: toy\)"),
    ({"where": "no_such_column = 1"}, r"where='no_such_column = 1': DuckDB says: Binder Error"),
    ({"layer": "7"}, r"backbone=fake has no layer '7' \(stored: last\)"),
    ({"target": "score"}, r"target=score is DOUBLE, not categories"),
    ({"backbone": "../x"}, r"backbone='../x' is not a valid name"),
])
def test_bad_keys_are_named(keys, message):
    toy_lake(n=100)
    with pytest.raises(ValueError, match=message):
        probe_data(**keys)


def test_fingerprint_same_data_same_hash_new_split_or_new_vectors_new_hash():
    lake = toy_lake(n=40)
    first = load(sel(), LABEL).fingerprint
    assert load(sel(), LABEL).fingerprint == first

    moved = dict(zip(lake["ids"], lake["split"]))
    moved[lake["ids"][0]] = "test" if moved[lake["ids"][0]] != "test" else "val"
    write_split("toy", "default", moved)
    second = load(sel(), LABEL).fingerprint
    assert second != first

    write_split("toy", "default", dict(zip(lake["ids"], lake["split"])))
    assert load(sel(), LABEL).fingerprint == first  # the same rows again: the same data
    write_embeddings("toy", "fake", lake["ids"], {"last": lake["X"] + 0.5})  # re-embedded: other vectors
    assert load(sel(), LABEL).fingerprint not in (first, second)
