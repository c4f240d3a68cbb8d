"""The heads' shared loader on hand-written lakes: joins, fusion, every way a selection fails,
and the data fingerprint."""
from __future__ import annotations

import numpy as np
import pytest

from heads.data import Selection, SelectionError, load
from heads.testing import toy_lake, write_embeddings, write_split, write_tracks


def sel(**keys) -> Selection:
    return Selection(**{"dataset": "toy", "backbone": "fake", "target": "label", **keys})


def test_rows_align_with_the_vectors_whatever_order_the_parts_hold():
    lake = toy_lake(n=60)
    data = load(sel())
    assert list(data.track_ids) == sorted(lake["ids"])
    order = np.argsort(lake["ids"])
    assert np.array_equal(data.features("last"), lake["X"][order])
    assert data.classes == ["c0", "c1", "c2"] and np.array_equal(data.y, lake["y"][order])
    assert {p: sum(c.values()) for p, c in data.counts().items()} == {"train": 36, "val": 12, "test": 12}


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
    data = load(sel(where="speaker_id IN ('s0', 's1', 's2')"))
    assert set(data.track_ids) == {f"toy_{i:05d}" for i in range(60) if i % 7 in (0, 1, 2)}

    query = tmp_path / "some.sql"
    query.write_text("SELECT track_id FROM tracks WHERE dataset = $dataset AND CAST(substr(track_id, 5) AS INTEGER) % 2 = 0")
    assert len(load(sel(select=str(query))).track_ids) == 30

    ids = [f"t{i}" for i in range(12)]
    write_tracks("nulls", [{"track_id": t, "label": None if i < 3 else "ab"[i % 2]} for i, t in enumerate(ids)])
    write_split("nulls", "default", {t: "train" if i < 9 else "val" for i, t in enumerate(ids)})
    write_embeddings("nulls", "fake", ids, {"last": np.ones((12, 2), np.float32)})
    data = load(sel(dataset="nulls"))
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
        load(sel(split="no_c2"))


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
        load(sel(**keys))


def test_fingerprint_same_data_same_hash_new_split_or_new_vectors_new_hash():
    lake = toy_lake(n=40)
    first = load(sel()).fingerprint
    assert load(sel()).fingerprint == first

    moved = dict(zip(lake["ids"], lake["split"]))
    moved[lake["ids"][0]] = "test" if moved[lake["ids"][0]] != "test" else "val"
    write_split("toy", "default", moved)
    second = load(sel()).fingerprint
    assert second != first

    write_split("toy", "default", dict(zip(lake["ids"], lake["split"])))
    assert load(sel()).fingerprint == first  # the same rows again: the same data
    write_embeddings("toy", "fake", lake["ids"], {"last": lake["X"] + 0.5})  # re-embedded: other vectors
    assert load(sel()).fingerprint not in (first, second)
