"""Jobs on one backbone name at once: one finishes as if undisturbed, or one is refused in a line.

The races are made deterministic: a test holds the job lock itself, or pauses one real
`python -m embed` inside its model load (a sitecustomize hook) while the other one runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import write_clip
from embed import engine, registry, store
from embed.engine import EmbedConfig, EmbedRefused
from ingest.api import ingest
from lake import catalog, locks

PAUSE_HOOK = '''
import os, time
if os.environ.get("EMBED_PAUSE_DIR"):
    import embed.registry as registry
    real_load = registry.load

    def paused_load(*args, **kwargs):
        folder = os.environ["EMBED_PAUSE_DIR"]
        open(os.path.join(folder, "loading"), "w").close()
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(folder, "go")) and time.time() < deadline:
            time.sleep(0.02)
        return real_load(*args, **kwargs)

    registry.load = paused_load
'''


def make_dataset(folder: Path, dataset: str, n: int = 6) -> None:
    for i in range(n):
        write_clip(folder / f"c{i:02d}.wav", seconds=0.5 + 0.25 * i, seed=i)
    ingest(dataset, source="folder", path=folder, shard_max_count=3, workers=1)


@pytest.fixture
def small_lake(tmp_path):
    make_dataset(tmp_path / "in", "small")


def embed(dataset: str = "small", **options):
    options.setdefault("loader_workers", 0)
    return engine.run(EmbedConfig(dataset=dataset, backbone="logmel", **options))


def cli(*args: str, env: dict | None = None, background: bool = False):
    command = [sys.executable, "-m", "embed", *args, "loader_workers=0"]
    full_env = {**os.environ, **(env or {})}
    if background:
        return subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=120)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def vectors(dataset: str, name: str) -> dict[str, np.ndarray]:
    rows = catalog.connect().execute(
        "SELECT track_id, emb FROM embeddings WHERE dataset = $d AND backbone = $b ORDER BY 1",
        {"d": dataset, "b": name}).fetchall()
    return {track_id: np.asarray(emb, np.float32) for track_id, emb in rows}


def stored_settings(name: str) -> dict:
    return json.loads(store.read_backbone(name)["settings"])


def test_a_job_while_another_holds_the_name_is_refused_in_one_line(small_lake):
    with locks.file_lock(engine.job_lock_path("small", "logmel"), holder="embed dataset=small name=logmel"):
        done = cli("dataset=small", "backbone=logmel", "max_seconds=5")
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "another embed of small · logmel is running (pid" in line and "wait for it" in line
    assert store.list_parts("small", "logmel") == [] and store.read_backbone("logmel") is None
    assert cli("dataset=small", "backbone=logmel", "max_seconds=5").returncode == 0  # free again


@pytest.mark.parametrize("first", ["max_seconds=5", "max_seconds=30"])
def test_two_real_jobs_started_together_one_runs_undisturbed_the_other_is_refused(small_lake, tmp_path, first):
    """Whichever job starts first finishes with an undisturbed run's tables; the other changes nothing."""
    second = "max_seconds=30" if first == "max_seconds=5" else "max_seconds=5"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.getcwd()]), "EMBED_PAUSE_DIR": str(pause)}
    job = cli("dataset=small", "backbone=logmel", first, env=env, background=True)
    deadline = time.time() + 60
    while not (pause / "loading").exists() and time.time() < deadline:  # planned, now loading its model
        time.sleep(0.02)
    assert (pause / "loading").exists(), job.communicate()
    other = cli("dataset=small", "backbone=logmel", second)
    (pause / "go").touch()
    _, first_err = job.communicate(timeout=120)

    assert job.returncode == 0, first_err
    assert other.returncode == 1, other.stderr
    assert "another embed of small · logmel is running" in one_error_line(other.stderr)
    winner_seconds = float(first.split("=")[1])
    assert stored_settings("logmel")["max_seconds"] == f"{winner_seconds:g}"
    embed(name="undisturbed", max_seconds=winner_seconds)
    got, expected = vectors("small", "logmel"), vectors("small", "undisturbed")
    assert got.keys() == expected.keys() and len(got) == 6
    assert all(np.array_equal(got[k], expected[k]) for k in got)
    hashes = {atomic_meta(part)[store.SETTINGS_KEY] for part in store.list_parts("small", "logmel")}
    assert hashes == {EmbedConfig(dataset="small", backbone="logmel", max_seconds=winner_seconds).settings_hash()}


def atomic_meta(part: Path) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (pq.read_schema(part).metadata or {}).items()}


def test_two_datasets_claiming_one_name_with_other_settings_are_caught_at_the_claim(small_lake, tmp_path, monkeypatch):
    """The settings check and the provenance write are one step under the name's lock: a job that
    passed the early check while another dataset claimed the name with other settings is refused."""
    make_dataset(tmp_path / "other-in", "other", n=3)
    real_load = registry.load

    def load_after_the_other_job_claims(*args, **kwargs):
        monkeypatch.setattr(registry, "load", real_load)
        assert embed("other").embedded == 3  # the 30 s job runs to the end while ours loads its model
        return real_load(*args, **kwargs)

    monkeypatch.setattr(registry, "load", load_after_the_other_job_claims)
    with pytest.raises(EmbedRefused, match=r"max_seconds=30 \(now 5\)"):
        embed("small", max_seconds=5)
    assert store.list_parts("small", "logmel") == []
    assert stored_settings("logmel")["max_seconds"] == "30"


def test_a_part_made_with_other_settings_is_never_counted_as_done(small_lake):
    """The aftermath of the old race: the backbones row says 5 s, every part was made with 30 s."""
    embed()  # 30 s
    row = store.read_backbone("logmel")
    five = EmbedConfig(dataset="small", backbone="logmel", max_seconds=5)
    store.write_backbone({**row, "max_seconds": 5.0, "settings": json.dumps(five.settings(), sort_keys=True)})
    with pytest.raises(EmbedRefused, match="made with other settings"):
        embed(max_seconds=5)
    redone = embed(max_seconds=5, force=True)
    assert redone.embedded == 6
    assert {atomic_meta(p)[store.SETTINGS_KEY] for p in store.list_parts("small", "logmel")} == {five.settings_hash()}
