"""The lake in object storage: `AUDIOLAKE_ROOT=s3://bucket/prefix` against a local S3 server.

moto's server mode, started here on 127.0.0.1 (never another address), stands in for S3: it
speaks the same HTTP API, conditional writes included. A job ingests, embeds (logmel), is
killed mid-embed and resumes to the table an undisturbed run writes, and the lake is read
back through `python -m lake.sql` and a probe head; nothing is written to local disk.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import write_clip

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

from embed import engine  # noqa: E402
from embed.engine import EmbedConfig  # noqa: E402
from ingest.api import ingest  # noqa: E402
from lake import catalog, locks, paths, storage  # noqa: E402
from lake.cli import UsageError  # noqa: E402

DIE_AFTER_FIRST_PART = '''
import os, signal
if os.environ.get("EMBED_DIE_AFTER_FIRST_PART"):
    import embed.store as store
    real_write_part = store.write_part

    def write_then_die(*args, **kwargs):
        written = real_write_part(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would, right after the first commit
        return written

    store.write_part = write_then_die
'''


@pytest.fixture(scope="module")
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, lake_root) -> dict[str, str]:
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


def new_lake(monkeypatch, bucket_prefix: str = "lake") -> str:
    bucket = f"{bucket_prefix}-{uuid.uuid4().hex[:8]}"
    storage.client().create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/audio/lake"
    monkeypatch.setenv("AUDIOLAKE_ROOT", root)
    return root


def two_classes(folder: Path, n: int = 4) -> Path:
    """Low and high tones in two sub-folders, so the folder labels are learnable from logmel."""
    import soundfile as sf

    from conftest import tone

    for label, freq in (("low", 220.0), ("high", 1760.0)):
        for i in range(n):
            path = folder / label / f"{label}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(0.5, 16000, freq=freq, seed=i), 16000, subtype="PCM_16")
    return folder


def embed(dataset: str):
    return engine.run(EmbedConfig(dataset=dataset, backbone="logmel", loader_workers=0))


def vectors(dataset: str) -> dict[str, np.ndarray]:
    rows = catalog.connect().execute(
        "SELECT track_id, emb FROM embeddings WHERE dataset = $d AND backbone = 'logmel'", {"d": dataset}).fetchall()
    return {track_id: np.asarray(emb, np.float32) for track_id, emb in rows}


def keys(root: str) -> list[str]:
    where = storage.path(root)
    listed = storage.client().list_objects_v2(Bucket=where.bucket, Prefix=where.key + "/")
    return sorted(item["Key"][len(where.key) + 1:] for item in listed.get("Contents", []))


def test_a_job_in_s3_ingests_embeds_and_reads_back_through_sql_and_a_probe(s3_env, monkeypatch, tmp_path, lake_root):
    root = new_lake(monkeypatch)
    result = ingest("tones", source="folder", path=two_classes(tmp_path / "in"), shard_max_count=3, workers=1)
    assert result.status == "written" and result.written == 8
    done = embed("tones")
    assert done.status == "written" and done.embedded == 8
    assert embed("tones").status == "unchanged"  # planned from the parts in S3

    stored = keys(root)
    assert "tables/tracks/dataset=tones/part-000000.parquet" in stored
    assert sum(k.startswith("tables/embeddings/dataset=tones/backbone=logmel/part-") for k in stored) == 3
    assert sum(k.startswith("shards/tones/") and k.endswith(".tar") for k in stored) == 3
    assert not any(".tmp" in k or k.endswith(".lock") for k in stored), stored  # locks released, no temporaries
    assert not lake_root.exists()  # nothing of the lake on local disk

    sql = subprocess.run([sys.executable, "-m", "lake.sql", "format=csv",
                          "SELECT t.label, count(*) AS n FROM embeddings e JOIN tracks t USING (dataset, track_id) "
                          "GROUP BY ALL ORDER BY 1"],
                         env={**os.environ}, capture_output=True, text=True, timeout=60)
    assert sql.returncode == 0, sql.stderr
    assert sql.stdout.replace('"', "").split() == ["label,n", "high,4", "low,4"]

    from heads.__main__ import main as train_cli
    from lake.splits import main as split_cli

    assert split_cli(["dataset=tones", "name=default", "stratify=label", "ratios=0.5,0.25,0.25"]) == 0
    assert train_cli(["head=probe", "dataset=tones", "backbone=logmel", "target=label", "seeds=1"]) == 0
    runs = catalog.connect().execute("SELECT head, dataset FROM runs").fetchall()
    assert runs == [("probe", "tones")]
    assert any(k.startswith("runs/") for k in keys(root)) and not lake_root.exists()


def test_an_embed_killed_mid_job_in_s3_resumes_to_the_undisturbed_table(s3_env, monkeypatch, tmp_path):
    source = two_classes(tmp_path / "in", n=3)
    new_lake(monkeypatch, "reference")
    ingest("tones", source="folder", path=source, shard_max_count=2, workers=1)
    embed("tones")
    undisturbed = vectors("tones")

    root = new_lake(monkeypatch)
    ingest("tones", source="folder", path=source, shard_max_count=2, workers=1)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DIE_AFTER_FIRST_PART)
    killed = subprocess.run(
        [sys.executable, "-m", "embed", "dataset=tones", "backbone=logmel", "loader_workers=0"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.getcwd()]), "EMBED_DIE_AFTER_FIRST_PART": "1"},
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    parts = [k for k in keys(root) if k.startswith("tables/embeddings/dataset=")]
    assert len(parts) == 1  # one whole part committed, no partial object of the next
    # The killed job's lease lock is still there; its holder is gone, so the re-run takes it over.
    assert any(k.endswith(f".tones.logmel.lock") for k in keys(root))

    resumed = embed("tones")
    assert resumed.status == "written" and resumed.already == 2 and resumed.embedded == 4
    got = vectors("tones")
    assert sorted(got) == sorted(undisturbed)
    for track_id, vector in undisturbed.items():
        np.testing.assert_array_equal(got[track_id], vector)
    rows = catalog.connect().execute("SELECT count(*), count(DISTINCT track_id) FROM stored_embeddings").fetchone()
    assert rows == (6, 6)  # no duplicates


def test_an_s3_lock_refuses_a_second_holder_and_takes_over_an_expired_lease(s3_env, monkeypatch):
    new_lake(monkeypatch)
    lock = paths.table_dir("embeddings") / ".x.lock"
    with locks.file_lock(lock, wait=False, holder="first"):
        with pytest.raises(locks.Busy, match="first"):
            with locks.file_lock(lock, wait=False, holder="second"):
                pass
    assert not lock.exists()
    # A holder on another machine: refused while its lease runs, taken over once it has run out.
    other = {"host": "elsewhere", "pid": 1, "holder": "embed on elsewhere", "expires": time.time() + 60}
    lock.write_text(json.dumps(other))
    with pytest.raises(locks.Busy, match="embed on elsewhere"):
        with locks.file_lock(lock, wait=False):
            pass
    lock.write_text(json.dumps({**other, "expires": time.time() - 1}))
    with locks.file_lock(lock, wait=False, holder="mine"):
        assert json.loads(lock.read_text())["holder"] == "mine"
    assert not lock.exists()


def test_a_held_s3_lock_renews_its_lease_and_still_releases(s3_env, monkeypatch):
    new_lake(monkeypatch)
    monkeypatch.setenv("AUDIOLAKE_LOCK_LEASE", "1.5")  # renewed every 0.5 s
    lock = paths.table_dir("embeddings") / ".x.lock"
    with locks.file_lock(lock, wait=False, holder="long job"):
        first = json.loads(lock.read_text())["expires"]
        time.sleep(1.0)  # at least one renewal
        assert json.loads(lock.read_text())["expires"] > first
        with pytest.raises(locks.Busy, match="long job"):
            with locks.file_lock(lock, wait=False):
                pass
    assert not lock.exists()  # released with the ETag of the latest renewal


def test_a_missing_bucket_is_refused_in_one_line(s3_env, monkeypatch):
    monkeypatch.setenv("AUDIOLAKE_ROOT", "s3://no-such-bucket/lake")
    with pytest.raises(UsageError) as refused:  # what every CLI prints as one `error:` line
        catalog.connect()
    assert str(refused.value) == (f"AUDIOLAKE_ROOT=s3://no-such-bucket/lake (endpoint {os.environ['AWS_ENDPOINT_URL']}): "
                                  "no such bucket (create it first)")


def test_an_s3_root_is_an_object_path_that_joins_and_pickles_like_a_local_one(monkeypatch):
    import pickle

    root = storage.path("s3://bucket/a/lake/")
    part = root / "tables" / "tracks" / "dataset=x" / "part-000000.parquet"
    assert str(part) == os.fspath(part) == "s3://bucket/a/lake/tables/tracks/dataset=x/part-000000.parquet"
    assert (part.bucket, part.key) == ("bucket", "a/lake/tables/tracks/dataset=x/part-000000.parquet")
    assert str(part.relative_to(root)) == "tables/tracks/dataset=x/part-000000.parquet"
    assert part.parent.name == "dataset=x" and part.stem == "part-000000"
    assert pickle.loads(pickle.dumps(part)) == part and storage.is_object(pickle.loads(pickle.dumps(part)))
    assert not storage.is_object(storage.path("data/lake"))
    with pytest.raises(UsageError, match="name a bucket"):
        storage.path("s3://")
