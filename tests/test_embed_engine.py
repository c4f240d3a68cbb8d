"""The embedding engine end to end on a tiny lake: resumable, idempotent, failures recorded."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import write_clip
from embed import engine, store
from embed.engine import EmbedConfig, EmbedRefused
from ingest.api import ingest
from lake import catalog, paths


@pytest.fixture
def small_lake(tmp_path):
    folder = tmp_path / "in"
    for i in range(10):
        write_clip(folder / f"c{i:02d}.wav", seconds=0.5 + 0.25 * i, rate=22050 if i % 2 else 16000,
                   channels=1 + i % 2, seed=i)
    ingest("small", source="folder", path=folder, shard_max_count=3, workers=1)
    return folder


def embed(**options):
    options.setdefault("loader_workers", 0)
    return engine.run(EmbedConfig(dataset="small", **options))


def table_rows(backbone: str) -> list[tuple]:
    con = catalog.connect()
    return con.execute("SELECT track_id, layer, sha256, emb FROM embeddings WHERE backbone = $b ORDER BY 1, 2",
                       {"b": backbone}).fetchall()


def test_one_part_per_shard_and_a_rerun_does_nothing(small_lake):
    first = embed(backbone="logmel", loader_workers=2)
    assert first.status == "written" and first.embedded == 10 and len(first.parts) == 4
    again = embed(backbone="logmel")
    assert again.status == "unchanged" and again.already == 10


def test_killed_after_the_first_shard_resumes_to_the_identical_table(small_lake, monkeypatch):
    embed(backbone="logmel", name="reference")
    real, written = store.write_part, []

    def killed_after_first(*args, **kwargs):
        if written:
            raise KeyboardInterrupt  # the process dies before the second part lands
        written.append(real(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(store, "write_part", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        embed(backbone="logmel", name="resumed", batch_size=2)
    assert len(store.list_parts("small", "resumed")) == 1
    monkeypatch.setattr(store, "write_part", real)
    resumed = embed(backbone="logmel", name="resumed", batch_size=2)
    assert resumed.already == 3 and resumed.embedded == 7
    reference, result = table_rows("reference"), table_rows("resumed")
    assert [r[:3] for r in result] == [r[:3] for r in reference]
    for ours, theirs in zip(result, reference):
        assert np.array_equal(np.asarray(ours[3], np.float32), np.asarray(theirs[3], np.float32))


def test_clips_added_later_are_embedded_alone(small_lake, tmp_path):
    embed(backbone="logmel")
    write_clip(small_lake / "new.wav", seconds=1.0, seed=99)
    ingest("small", source="folder", path=small_lake, shard_max_count=3, workers=1)
    later = embed(backbone="logmel")
    assert later.embedded == 1 and later.already == 10
    assert len(table_rows("logmel")) == 11


def test_vectors_of_clips_removed_from_the_dataset_are_dropped(small_lake):
    embed(backbone="logmel")
    (small_lake / "c03.wav").unlink()
    ingest("small", source="folder", path=small_lake, shard_max_count=3, workers=1)
    result = embed(backbone="logmel")
    assert result.status == "unchanged" and result.already == 9
    assert [r[0] for r in table_rows("logmel")] == [f"c{i:02d}" for i in range(10) if i != 3]


def test_a_clip_that_no_longer_decodes_is_recorded_as_a_failure(small_lake):
    con = catalog.connect()
    shard, offset = con.execute("SELECT shard, \"offset\" FROM tracks WHERE track_id = 'c04'").fetchone()
    with open(paths.root() / shard, "r+b") as handle:  # bit rot inside the shard
        handle.seek(offset)
        handle.write(b"\0" * 64)
    result = embed(backbone="logmel")
    assert result.embedded == 9
    assert [f["track_id"] for f in result.failures] == ["c04"]
    assert "decode failed" in result.failures[0]["reason"]
    assert embed(backbone="logmel").status == "unchanged", "a recorded failure is not retried forever"
    with pytest.raises(EmbedRefused, match="strict=true: c04"):
        embed(backbone="logmel", name="strict", strict=True)


def test_other_settings_under_the_same_name_are_refused(small_lake):
    embed(backbone="logmel")
    with pytest.raises(EmbedRefused, match="max_seconds=30 \\(now 2\\)"):
        embed(backbone="logmel", max_seconds=2)
    assert embed(backbone="logmel", max_seconds=2, name="logmel-2s").embedded == 10


def test_chunking_mean_differs_from_crop_only_for_long_clips(small_lake):
    embed(backbone="logmel", name="crop", max_seconds=1.0)
    embed(backbone="logmel", name="mean", max_seconds=1.0, chunking="mean")
    crop = {r[0]: np.asarray(r[3]) for r in table_rows("crop")}
    mean = {r[0]: np.asarray(r[3]) for r in table_rows("mean")}
    assert np.allclose(crop["c00"], mean["c00"])  # 0.5 s: one chunk either way
    assert not np.allclose(crop["c09"], mean["c09"])  # 2.75 s: three chunks averaged


def test_views_give_fixed_width_vectors_for_array_functions(small_lake):
    embed(backbone="logmel")
    con = catalog.connect()
    assert con.execute("SELECT typeof(emb) FROM emb_logmel LIMIT 1").fetchone() == ("FLOAT[256]",)
    nearest = con.execute(
        "SELECT track_id, array_cosine_similarity(emb, (SELECT emb FROM emb_logmel WHERE track_id = 'c00')) AS s "
        "FROM emb_logmel ORDER BY s DESC LIMIT 2").fetchall()
    assert nearest[0] == ("c00", pytest.approx(1.0))
    backbone = con.execute("SELECT model_id, dim, layers, settings FROM backbones").fetchone()
    assert backbone[:3] == ("logmel", 256, ["stats"])


def test_decoded_audio_is_mono_at_the_backbone_rate(small_lake):
    from embed.loader import BatchDataset, Clip

    con = catalog.connect()
    row = con.execute("SELECT track_id, sha256, shard, \"offset\", nbytes, duration_s FROM tracks "
                      "WHERE track_id = 'c09'").fetchone()  # stereo, 22.05 kHz, 2.75 s
    (decoded,) = BatchDataset(paths.root(), [[Clip(*row)]], 16000, 30.0, "crop")[0]
    (chunk,) = decoded.chunks
    assert chunk.ndim == 1 and chunk.dtype == np.float32
    assert len(chunk) == pytest.approx(2.75 * 16000, abs=2)


def test_parts_group_rows_by_layer_in_row_groups(small_lake):
    result = embed(backbone="logmel")
    meta = pq.ParquetFile(result.parts[0]).metadata
    assert meta.num_row_groups == 1 and meta.num_rows == 3


def test_cli_with_two_workers_writes_every_shard_once(small_lake):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "embed", "dataset=small", "backbone=logmel", "workers=2",
                           "loader_workers=0"], capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert "embedded 10 clips by 2 worker processes" in done.stderr.replace("\n", " ")
    assert len(store.list_parts("small", "logmel")) == 4
    assert len(table_rows("logmel")) == 10
    again = subprocess.run([sys.executable, "-m", "embed", "dataset=small", "backbone=logmel"],
                           capture_output=True, text=True, env=os.environ)
    assert "nothing to do" in again.stderr


def test_notebook_api_gives_ids_labels_and_the_matrix_of_the_table(small_lake):
    from lake.embeddings import load
    from lake.vectors import READ_PATHS

    embed(backbone="logmel")
    READ_PATHS.clear()
    emb = load("small", "logmel", label="format")
    assert emb.layer == "stats" and emb.matrix.shape == (10, 256) and emb.matrix.dtype == np.float32
    assert set(READ_PATHS) == {"fast"}, "parts written by the engine take the fast read path"
    assert list(emb.labels) == ["wav"] * 10
    by_sql = {r[0]: np.asarray(r[3], np.float32) for r in table_rows("logmel")}
    for track_id, row in zip(emb.track_ids, emb.matrix):
        assert np.array_equal(row, by_sql[track_id])
    with pytest.raises(ValueError, match="no layer 'last'"):
        load("small", "logmel", layer="last")


def test_hf_backbone_with_all_layers_gives_one_row_per_layer_per_clip(small_lake, wav2vec2_dir):
    from lake.embeddings import load

    result = embed(backbone=f"hf:{wav2vec2_dir}", name="tiny", layers="all", batch_size=4)
    assert result.embedded == 10 and not result.failures
    con = catalog.connect()
    per_layer = con.execute("SELECT layer, count(*), count(DISTINCT track_id) FROM embeddings "
                            "WHERE backbone = 'tiny' GROUP BY 1 ORDER BY 1").fetchall()
    assert per_layer == [("0", 10, 10), ("1", 10, 10), ("2", 10, 10)]
    assert con.execute("SELECT typeof(emb) FROM emb_tiny LIMIT 1").fetchone() == ("FLOAT[32]",)
    backbone = con.execute("SELECT dim, layers, sample_rate FROM backbones WHERE backbone = 'tiny'").fetchone()
    assert backbone == (32, ["0", "1", "2"], 16000)
    layer1 = load("small", "tiny", layer="1")
    assert layer1.matrix.shape == (10, 32)
    with pytest.raises(ValueError, match="pass layer="):
        load("small", "tiny")


def test_embedding_a_known_source_ingests_it_first_or_says_how(monkeypatch):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "embed", "dataset=gtzan", "backbone=logmel"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1
    assert "gtzan is not ingested yet" in done.stderr and "sanchit-gandhi/gtzan" in done.stderr
    assert "Traceback" not in done.stderr
    unknown = subprocess.run([sys.executable, "-m", "embed", "dataset=mine", "backbone=logmel"],
                             capture_output=True, text=True, env=env)
    assert unknown.returncode == 1 and "just ingest dataset=mine source=folder path=DIR" in unknown.stderr


def test_a_process_killed_with_sigkill_resumes_to_the_identical_table(small_lake, tmp_path):
    """The real thing: no exception handler or finally block runs when the job is SIGKILLed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    embed(backbone="logmel", name="reference", batch_size=2)
    # A slow disk after the first part: the kill lands while later shards are in flight.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import time, embed.store as store\n"
        "real = store.write_part\n"
        "def slow(*a, **k):\n"
        "    out = real(*a, **k)\n"
        "    time.sleep(60)\n"
        "    return out\n"
        "store.write_part = slow\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.getcwd()])}
    job = subprocess.Popen([sys.executable, "-m", "embed", "dataset=small", "backbone=logmel", "name=killed",
                            "batch_size=2", "loader_workers=0"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not store.list_parts("small", "killed") and time.time() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert len(store.list_parts("small", "killed")) == 1
    resumed = embed(backbone="logmel", name="killed", batch_size=2)
    assert (resumed.already, resumed.embedded) == (3, 7)
    reference, result = table_rows("reference"), table_rows("killed")
    assert [r[:3] for r in result] == [r[:3] for r in reference]
    for ours, theirs in zip(result, reference):
        assert np.array_equal(np.asarray(ours[3], np.float32), np.asarray(theirs[3], np.float32))
