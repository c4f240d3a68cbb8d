"""What an embed job remembers: a clip's own failure, never a failure of the job around it.

A clip whose bytes do not decode (or whose vector is not finite) is recorded once and not
retried; a shard that cannot be read right now (gone after two re-ingests, a short read) is
not recorded at all: the job exits non-zero and the next run embeds those clips.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from conftest import write_clip
from embed import engine, loader, store
from embed.engine import EmbedConfig, EmbedRefused
from ingest.api import ingest
from lake import catalog, paths


@pytest.fixture
def small_lake(tmp_path):
    folder = tmp_path / "in"
    for i in range(6):
        write_clip(folder / f"c{i:02d}.wav", seconds=0.5 + 0.25 * i, seed=i)
    ingest("small", source="folder", path=folder, shard_max_count=3, workers=1)
    return folder


def embed(**options):
    options.setdefault("loader_workers", 0)
    options.setdefault("backbone", "logmel")
    return engine.run(EmbedConfig(dataset="small", **options))


def cli(*args: str, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "embed", "dataset=small", *args, "loader_workers=0"],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def rows(name: str) -> list[tuple]:
    return catalog.connect().execute(
        "SELECT track_id, layer, sha256, emb FROM embeddings WHERE backbone = $b ORDER BY 1, 2", {"b": name}).fetchall()


def same_table(name: str, reference: str) -> bool:
    ours, theirs = rows(name), rows(reference)
    return ([r[:3] for r in ours] == [r[:3] for r in theirs]
            and all(np.array_equal(np.asarray(a[3], np.float32), np.asarray(b[3], np.float32))
                    for a, b in zip(ours, theirs)))


def shard_of(track_id: str) -> str:
    return catalog.connect().execute("SELECT shard FROM tracks WHERE track_id = $t", {"t": track_id}).fetchone()[0]


# -- a shard that cannot be read now is retried -------------------------------------------------

def test_a_vanished_shard_fails_the_job_and_the_next_run_embeds_its_clips(small_lake, tmp_path):
    embed(name="reference")
    shard = paths.root() / shard_of("c03")
    parked = tmp_path / "parked.tar"
    shard.rename(parked)  # as after two re-ingests during the job
    first = cli("backbone=logmel")
    assert first.returncode == 1
    line = one_error_line(first.stderr)
    assert "3 clips could not be read" in line and "No such file" in line and "the next run retries them" in line
    assert len(store.list_parts("small", "logmel")) == 1  # the readable shard's vectors are kept
    report = json.loads((paths.reports_dir("small") / "embed-logmel.json").read_text())
    assert report["failures"] == [], "a failure to read the shard is not a property of its clips"

    strict_again = embed(strict=True)  # still gone: incomplete again, nothing remembered
    assert strict_again.status == "incomplete" and len(strict_again.unread) == 3 and not strict_again.failures

    parked.rename(shard)
    resumed = embed()
    assert (resumed.status, resumed.already, resumed.embedded) == ("written", 3, 3)
    assert same_table("logmel", "reference")
    assert embed(strict=True).status == "unchanged"


def test_a_retry_of_the_same_shard_merges_with_the_part_it_already_has(small_lake, monkeypatch):
    embed(name="reference")
    real = loader.read_member

    def short_read_of_c01(shard, offset, nbytes):
        if offset == catalog.connect().execute("SELECT \"offset\" FROM tracks WHERE track_id = 'c01'").fetchone()[0]:
            raise OSError(f"{shard}: expected {nbytes} bytes at offset {offset}, got 100")
        return real(shard, offset, nbytes)

    monkeypatch.setattr(loader, "read_member", short_read_of_c01)
    first = embed()
    assert first.status == "incomplete" and [u["track_id"] for u in first.unread] == ["c01"]
    assert not first.failures
    monkeypatch.setattr(loader, "read_member", real)
    again = embed()
    assert (again.already, again.embedded) == (5, 1)
    assert same_table("logmel", "reference")
    ours = [pq.read_table(p, columns=["track_id"]).column(0).to_pylist() for p in store.list_parts("small", "logmel")]
    theirs = [pq.read_table(p, columns=["track_id"]).column(0).to_pylist()
              for p in store.list_parts("small", "reference")]
    assert ours == theirs, "the merged part holds its rows in the order an undisturbed run writes them"


def test_failures_recorded_without_a_kind_are_retried(small_lake):
    """Lakes written before failures had kinds recorded 'No such file' as a clip's failure: such
    records are not trusted as done, so the next run tries those clips again."""
    from lake.vectors import write_vector_parquet

    embed()
    part = store.list_parts("small", "logmel")[0]
    table = pq.read_table(part)
    lost, lost_sha = table.column("track_id")[0].as_py(), table.column("sha256")[0].as_py()
    meta = {k.decode(): v.decode() for k, v in (pq.read_schema(part).metadata or {}).items()}
    meta[store.FAILURES_KEY] = json.dumps([{"track_id": lost, "sha256": lost_sha,
                                            "reason": "decode failed: [Errno 2] No such file or directory: 'x.tar'"}])
    write_vector_parquet(table.filter(pc.not_equal(table.column("track_id"), lost)), part, meta)
    again = embed()
    assert (again.status, again.embedded, again.already) == ("written", 1, 5)
    assert store.part_contents(part).failures == []


# -- a clip's own failure is remembered --------------------------------------------------------

def test_an_undecodable_clip_is_remembered_and_strict_keeps_failing(small_lake):
    con = catalog.connect()
    shard, offset = con.execute("SELECT shard, \"offset\" FROM tracks WHERE track_id = 'c04'").fetchone()
    with open(paths.root() / shard, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\0" * 64)
    first = embed()
    assert first.status == "written" and [f["track_id"] for f in first.failures] == ["c04"] and not first.unread
    assert embed().status == "unchanged"
    with pytest.raises(EmbedRefused, match="strict=true: c04: decode failed"):
        embed(strict=True)


# -- impossible settings are refused before anything runs --------------------------------------

@pytest.mark.parametrize("key, value", [("max_seconds", math.nan), ("max_seconds", math.inf), ("max_seconds", 0.0),
                                        ("max_seconds", -1.0), ("workers", math.nan), ("workers", 0),
                                        ("batch_size", math.nan), ("batch_size", -1), ("loader_workers", math.nan),
                                        ("workers", 1.5)])
def test_non_finite_or_impossible_numbers_are_refused_by_the_config(key, value):
    with pytest.raises(ValueError, match=key):
        EmbedConfig(dataset="small", backbone="logmel", **{key: value})


@pytest.mark.parametrize("layers", ["abc", "99"])
def test_an_unknown_layer_on_a_new_name_is_one_line(small_lake, layers):
    with pytest.raises(EmbedRefused, match=f"layers={layers}: no layer"):
        embed(name=f"new-{layers}", layers=layers)
    assert store.read_backbone(f"new-{layers}") is None


def test_bad_layers_and_a_missing_cuda_are_one_line_errors_on_the_command_line(small_lake):
    layers = cli("backbone=logmel", "layers=abc")
    assert layers.returncode != 0 and "layers=abc: no layer 'abc'" in one_error_line(layers.stderr)
    cuda = cli("backbone=musicnn-mtt", "device=cuda", env={"CUDA_VISIBLE_DEVICES": ""})
    assert cuda.returncode != 0
    line = one_error_line(cuda.stderr)
    assert "device=cuda" in line and "no CUDA" in line
    assert store.read_backbone("musicnn-mtt") is None


def test_cuda_is_refused_before_loading_when_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device=cuda"):
        EmbedConfig(dataset="small", backbone="logmel", device="cuda")
    with pytest.raises(ValueError, match="device=tpu"):
        EmbedConfig(dataset="small", backbone="logmel", device="tpu")


# -- precision says what was computed ----------------------------------------------------------

def test_logmel_on_cuda_records_the_fp32_it_computes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    on_gpu = EmbedConfig(dataset="small", backbone="logmel", device="cuda")
    assert on_gpu.precision == "fp32" and on_gpu.settings()["precision"] == "fp32"
    with pytest.raises(ValueError, match="precision=bf16: logmel computes in fp32 only"):
        EmbedConfig(dataset="small", backbone="logmel", device="cuda", precision="bf16")
    assert EmbedConfig(dataset="small", backbone="musicnn-mtt", device="cuda").precision == "bf16"


def test_logmel_computes_fp32_even_inside_an_autocast_region():
    from embed.logmel import LogMel

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(22050).astype(np.float32) * 0.1]
    plain = LogMel().embed(waves)["stats"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = LogMel().embed(waves)["stats"]
    assert np.array_equal(plain, autocast)
