"""Issue 8, "Trust the lake": one bad file or folder never takes the lake down, and no reader
serves a vector made from audio that has since changed."""
from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import write_clip
from embed import engine, store
from embed.engine import EmbedConfig
from ingest.api import ingest
from lake import atomic, catalog, embeddings, leakage, paths, queries, splits, sql
from lake.cli import run_main
from lake.schemas import tracks_table

DIM = 4


def write_tracks(dataset: str, shas: dict[str, str], **extra) -> Path:
    rows = [{"dataset": dataset, "track_id": t, "shard": "s.tar", "key": t, "offset": 512, "nbytes": 10,
             "format": "wav", "sha256": sha, "duration_s": 1.0, "sample_rate": 16000, "channels": 1,
             "source": "test", "label": ["rock", "folk"][i % 2], **extra} for i, (t, sha) in enumerate(shas.items())]
    return atomic.write_parquet(tracks_table(rows), paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet")


def write_vectors(dataset: str, shas: dict[str, str], backbone: str = "vec", shard: str = "b0/p-000000") -> Path:
    ids = list(shas)
    matrix = np.arange(len(ids) * DIM, dtype=np.float32).reshape(len(ids), DIM) + 1
    shard = f"shards/{dataset}/{shard}.tar"
    store.write_backbone({"backbone": backbone, "spec": backbone, "dim": DIM, "layers": ["last"]})
    return store.write_part(store.part_path(dataset, backbone, shard), dataset, backbone, DIM,
                            {"last": (ids, [shas[t] for t in ids], matrix)}, shard, [], "x")


def aged(path: Path, seconds: float = 3600) -> Path:
    """Writers are done with a file this old: only such a file may be moved to quarantine."""
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def small_lake() -> dict[str, Path]:
    shas = {f"t{i}": f"h{i}" for i in range(4)}
    write_tracks("a", shas)
    write_tracks("b", {"u0": "g0"})
    return {"a0": write_vectors("a", dict(list(shas.items())[:2]), shard="b0/a-000000"),
            "a1": write_vectors("a", dict(list(shas.items())[2:]), shard="b0/a-000001")}


def quarantined(path: Path) -> Path:
    return paths.root() / "quarantine" / path.relative_to(paths.tables_dir())


# ---- (3) one bad file or folder ------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_part_is_named_once_moved_to_quarantine_and_the_rest_reads(damage, capsys):
    parts = small_lake()
    bad = parts["a1"]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not parquet at all" * 50)
    aged(bad)
    con = catalog.connect()
    assert con.execute("SELECT count(*) FROM tracks").fetchone() == (5,)
    assert con.execute("SELECT list(track_id ORDER BY track_id) FROM embeddings").fetchone() == (["t0", "t1"],)
    assert con.execute("SELECT count(*) FROM emb_vec").fetchone() == (2,)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if bad.name in line]
    assert len(lines) == 1 and "quarantine" in lines[0], err
    assert not bad.exists() and quarantined(bad).read_bytes()[:18] == (data[:18] if damage == "truncated"
                                                                      else b"not parquet at all")
    assert store.list_parts("a", "vec") == embeddings.parts("a", "vec") == [parts["a0"]]
    assert embeddings.load("a", "vec", label=None).track_ids.tolist() == ["t0", "t1"]
    assert {s["table"]: s["files"] for s in catalog.table_stats()}["embeddings"] == 1
    catalog.connect()
    assert bad.name not in capsys.readouterr().err, "named once: it is gone from tables/ now"


def test_a_part_of_another_table_copied_into_tables_is_quarantined(capsys):
    small_lake()
    con = duckdb.connect()
    foreign = paths.partition_dir("tracks", dataset="a") / "mine.parquet"
    # a user's COPY of some other table (a split) into the tracks folder
    con.execute(f"COPY (SELECT 'a' AS dataset, 's' AS split_name, 't0' AS track_id, 'train' AS split) "
                f"TO '{foreign}' (FORMAT parquet)")
    aged(foreign)
    assert sql.main(["SELECT count(*) AS n, count(shard) AS with_shard FROM tracks", "format=csv"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1] == "5,5"
    assert "mine.parquet" in err and "shard" in err and quarantined(foreign).is_file()


def test_a_folder_with_a_bad_partition_name_is_skipped_by_every_view(capsys):
    small_lake()
    # written before lake.paths.check_name refused trailing newlines
    bad_dir = paths.table_dir("tracks") / "dataset=nl\n"
    write_tracks("nl", {"n0": "x"}).rename(_mkdir(bad_dir) / "part-000000.parquet")
    paths.partition_dir("tracks", dataset="nl").rmdir()
    stray = paths.table_dir("embeddings") / "dataset=a" / "layer=last"
    write_vectors("a", {"t0": "h0"}, backbone="other").rename(_mkdir(stray) / "part-x.parquet")
    con = catalog.connect()
    assert con.execute("SELECT list(DISTINCT dataset ORDER BY dataset) FROM tracks").fetchone() == (["a", "b"],)
    assert con.execute("SELECT count(*) FROM embeddings").fetchone() == (4,)
    err = capsys.readouterr().err
    assert "dataset='nl\\n'" in err and "layer=last" in err
    assert (bad_dir / "part-000000.parquet").is_file(), "a folder is named, never moved"
    assert sql.main(["SELECT count(*) AS n FROM tracks", "format=csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "5"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_file_still_being_written_is_skipped_but_left_in_place(capsys):
    parts = small_lake()
    half = parts["a1"].parent / "part-being-copied.parquet"
    half.write_bytes(parts["a1"].read_bytes()[:100])  # modified just now: someone may be writing it
    # an atomic write in progress is a hidden .tmp sibling: never listed, never moved
    tmp = parts["a1"].parent / ".part-new.parquet.abc123.tmp"
    tmp.write_bytes(b"half")
    con = catalog.connect()
    assert con.execute("SELECT count(*) FROM embeddings").fetchone() == (4,)
    err = capsys.readouterr().err
    assert "part-being-copied.parquet" in err and "left in place" in err and ".tmp" not in err
    assert half.is_file() and tmp.is_file()


def embed_logmel(dataset: str, **options):
    return engine.run(EmbedConfig(dataset=dataset, backbone="logmel", loader_workers=0, **options))


def test_a_damaged_part_is_rewritten_by_the_next_embed(tmp_path):
    folder = tmp_path / "in"
    for i in range(4):
        write_clip(folder / f"c{i}.wav", seconds=0.3, seed=i)
    ingest("k", source="folder", path=folder, shard_max_count=2, workers=1)
    embed_logmel("k")
    first, second = store.list_parts("k", "logmel")
    second.write_bytes(second.read_bytes()[:200])
    aged(second)
    again = embed_logmel("k")
    assert again.embedded == 2 and second.is_file() and pq.read_table(second).num_rows == 2
    assert embeddings.load("k", "logmel", label=None).matrix.shape[0] == 4


def test_a_damaged_tracks_or_backbones_part_is_set_aside_and_rebuilt(tmp_path, capsys):
    folder = tmp_path / "in"
    for i in range(3):
        write_clip(folder / f"c{i}.wav", seconds=0.3, seed=i)
    ingest("k", source="folder", path=folder, workers=1)
    embed_logmel("k")
    tracks_part = paths.partition_dir("tracks", dataset="k") / "part-000000.parquet"
    tracks_part.write_bytes(b"not parquet at all")
    aged(tracks_part)
    backbone_part = store.backbone_part("logmel")
    backbone_part.write_bytes(backbone_part.read_bytes()[:100])
    aged(backbone_part)
    rebuilt = ingest("k", source="folder", path=folder, workers=1)
    assert rebuilt.status == "written" and quarantined(tracks_part).is_file()
    assert embed_logmel("k").embedded == 0  # the vectors match the rebuilt tracks by hash
    assert store.read_backbone("logmel")["spec"] == "logmel" and quarantined(backbone_part).is_file()
    assert "moved to quarantine" in capsys.readouterr().err


# ---- (4) stale vectors ----------------------------------------------------------------------

@pytest.fixture
def changed_lake(tmp_path):
    """Embedded, then the folder changes (one added, one removed, one file's audio replaced) and
    is re-ingested, not yet re-embedded."""
    folder = tmp_path / "in"
    for i in range(5):
        write_clip(folder / f"c{i}.wav", seconds=0.3, seed=i)
    ingest("k", source="folder", path=folder, workers=1)
    embed_logmel("k")
    write_clip(folder / "c1.wav", seconds=0.3, seed=99)   # new audio under the same name
    (folder / "c4.wav").unlink()
    write_clip(folder / "c5.wav", seconds=0.3, seed=5)
    ingest("k", source="folder", path=folder, workers=1)
    return folder


def test_views_serve_only_vectors_of_the_current_audio(changed_lake):
    con = catalog.connect()
    served = "SELECT list(track_id ORDER BY track_id) FROM {}"
    assert con.execute(served.format("embeddings")).fetchone() == (["c0", "c2", "c3"],)
    assert con.execute(served.format("emb_logmel")).fetchone() == (["c0", "c2", "c3"],)
    assert con.execute("SELECT track_id, why FROM stale_embeddings ORDER BY 1").fetchall() == [
        ("c1", "audio changed"), ("c4", "track removed")]
    (row,) = queries.run_file(con, "embedding_coverage", dataset="k").to_pylist()
    assert row == {"backbone": "logmel", "clips": 5, "with_vectors": 3, "stale_vectors": 1, "without_vectors": 1,
                   "coverage": 0.6, "orphan_vectors": 1}


def test_nearest_neighbours_never_serves_a_stale_vector(changed_lake):
    con = catalog.connect()
    found = queries.run_file(con, "nearest_neighbours", dataset="k", backbone="logmel", track_id="c0", k="10")
    assert sorted(found.column("track_id").to_pylist()) == ["c2", "c3"]
    with pytest.raises(duckdb.Error, match="c1.*audio.*changed.*just embed dataset=k backbone=logmel"):
        queries.run_file(con, "nearest_neighbours", dataset="k", backbone="logmel", track_id="c1", k="10")


def test_load_refuses_vectors_of_changed_audio_and_names_the_fix(changed_lake):
    with pytest.raises(ValueError) as refused:
        embeddings.load("k", "logmel", label=None)
    assert str(refused.value) == ("1 vectors of logmel were made from audio that has since changed (e.g. c1): "
                                  "run just embed dataset=k backbone=logmel")
    embed_logmel("k")
    emb = embeddings.load("k", "logmel", label=None)
    assert sorted(emb.track_ids.tolist()) == ["c0", "c1", "c2", "c3", "c5"]


def test_load_drops_vectors_of_removed_tracks_and_matches_every_row_by_hash():
    write_tracks("a", {"t0": "h0", "t1": "h1", "t2": "new"})
    write_vectors("a", {"t0": "h0", "t1": "h1", "gone": "h9"})
    emb = embeddings.load("a", "vec", label="label")
    assert emb.track_ids.tolist() == ["t0", "t1"] and emb.labels.tolist() == ["rock", "folk"]
    assert np.array_equal(emb.matrix, np.arange(2 * DIM, dtype=np.float32).reshape(2, DIM) + 1)
    write_vectors("a", {"t2": "old"}, shard="b0/p-000001")
    with pytest.raises(ValueError, match="^1 vectors of vec were made from audio that has since changed"):
        embeddings.load("a", "vec", label=None)
    kept = embeddings.load("a", "vec", label=None, stale="skip")
    assert kept.track_ids.tolist() == ["t0", "t1"] and kept.matrix.shape == (2, DIM)


# ---- (4) splits -----------------------------------------------------------------------------

def split_cli(module, *args: str) -> int:
    with pytest.raises(SystemExit) as done:
        run_main(module.main, list(args))
    return done.value.code


def test_a_split_says_when_it_no_longer_covers_its_dataset(capsys):
    shas = {f"x{i:02d}": f"h{i}" for i in range(20)}
    write_tracks("d", shas)
    assert split_cli(splits, "dataset=d", "stratify=label") == 0
    assert splits.coverage_problem(catalog.connect(), "d", "default") is None
    now = {t: s for t, s in shas.items() if t != "x03"}
    now["x07"] = "replaced"
    now.update({f"n{i}": f"new{i}" for i in range(5)})
    write_tracks("d", now)
    problem = splits.coverage_problem(catalog.connect(), "d", "default")
    assert problem == ("split default of d no longer covers its dataset: 5 tracks added since it was made, "
                       "1 listed track is gone, 1 track's audio changed; remake it: "
                       "just split dataset=d name=default")
    capsys.readouterr()
    assert split_cli(leakage, "dataset=d") == 1
    assert problem in capsys.readouterr().out.splitlines()
    assert split_cli(splits, "dataset=d", "stratify=label") == 0
    assert "5 tracks added since it was made, 1 listed track is gone, 1 track's audio changed" in \
        capsys.readouterr().out
    assert splits.coverage_problem(catalog.connect(), "d", "default") is None


def test_train_refuses_a_split_that_no_longer_covers_its_dataset():
    from heads.data import Selection, SelectionError, load

    shas = {f"x{i:02d}": f"h{i}" for i in range(20)}
    write_tracks("d", shas)
    write_vectors("d", shas)
    assert split_cli(splits, "dataset=d", "stratify=label") == 0
    assert load(Selection(dataset="d", backbone="vec", target="label")).track_ids.size == 20
    write_tracks("d", {**shas, "n0": "new0"})
    with pytest.raises(SelectionError, match="split default of d no longer covers its dataset: 1 track added"):
        load(Selection(dataset="d", backbone="vec", target="label"))


def test_a_split_of_a_selection_is_judged_by_what_its_where_selects_now():
    write_tracks("d", {f"x{i:02d}": f"h{i}" for i in range(20)})
    assert split_cli(splits, "dataset=d", "name=rock", "where=label = 'rock'", "seed=3") == 0
    write_tracks("d", {**{f"x{i:02d}": f"h{i}" for i in range(20)}, "x20": "h20", "x21": "h21"})
    problem = splits.coverage_problem(catalog.connect(), "d", "rock")
    assert problem.startswith("split rock of d no longer covers its dataset: 1 track added since it was made;")
    assert problem.endswith("just split dataset=d name=rock seed=3 \"where=label = 'rock'\"")


def test_a_split_made_before_hashes_were_stored_is_judged_on_ids():
    from heads.testing import write_split

    write_tracks("d", {"a": "h1", "b": "h2", "c": "h3"})
    write_split("d", "old", {"a": "train", "b": "test", "c": "val"})
    assert splits.coverage_problem(catalog.connect(), "d", "old") is None
    write_tracks("d", {"a": "changed", "b": "h2"})
    assert splits.coverage_problem(catalog.connect(), "d", "old") == (
        "split old of d no longer covers its dataset: 1 listed track is gone; remake it: "
        "just split dataset=d name=old")


def test_footer_checks_are_remembered_until_a_file_changes(monkeypatch):
    from lake import parts as lake_parts

    written = small_lake()
    catalog.connect()
    reads = []
    real = lake_parts.pq.read_schema
    monkeypatch.setattr(lake_parts.pq, "read_schema", lambda path: reads.append(path) or real(path))
    catalog.connect()
    assert reads == []
    bad = written["a0"]
    bad.write_bytes(bad.read_bytes()[:-10])
    aged(bad)
    con = catalog.connect()
    assert reads == [bad] and quarantined(bad).is_file()
    assert con.execute("SELECT list(track_id ORDER BY track_id) FROM embeddings").fetchone() == (["t2", "t3"],)


def test_parts_of_another_schema_beside_ours_are_read_by_name():
    small_lake()
    con = duckdb.connect()
    other = paths.partition_dir("embeddings", dataset="a", backbone="vec") / "from-another-tool.parquet"
    con.execute(f"COPY (SELECT 'a' AS dataset, 'vec' AS backbone, 't0' AS track_id, 'h0' AS sha256, 'mean' AS layer, "
                f"[1.0, 2.0, 3.0, 4.0]::FLOAT[] AS emb, 'x' AS note) TO '{other}' (FORMAT parquet)")
    con = catalog.connect()
    assert con.execute("SELECT count(*), count(note) FROM embeddings").fetchone() == (5, 1)
    assert con.execute("SELECT count(*) FROM emb_vec WHERE layer = 'mean'").fetchone() == (1,)


def test_without_a_hash_on_either_side_only_the_id_is_matched():
    write_tracks("a", {"t0": None, "t1": "h1", "t2": "h2"})  # t0: a tracks table written by hand
    write_vectors("a", {"t0": "any", "t1": None, "t2": "old", "t9": None})  # t1: another tool's vector
    con = catalog.connect()
    assert con.execute("SELECT list(track_id ORDER BY track_id) FROM embeddings").fetchone() == (["t0", "t1"],)
    assert con.execute("SELECT list(track_id ORDER BY track_id) FROM emb_vec").fetchone() == (["t0", "t1"],)
    assert con.execute("SELECT track_id, why, current_sha256 FROM stale_embeddings ORDER BY 1").fetchall() == [
        ("t2", "audio changed", "h2"), ("t9", "track removed", None)]
    assert embeddings.load("a", "vec", label=None, stale="skip").track_ids.tolist() == ["t0", "t1"]
    with pytest.raises(embeddings.StaleVectors, match="^1 vectors of vec .*e.g. t2"):
        embeddings.load("a", "vec", label=None)
