"""engine=ray and workers=N write exactly the parts the in-process engine writes; a Ray worker
killed in the middle of a shard is restarted, its shard retried, and nothing is duplicated.

One local Ray instance (2 CPUs) serves the module. Its worker processes run a setup hook that
lets a test kill one of them on the second clip it reads: arm it by creating the file
`armed` in the hook's folder; the worker that fires it renames it to `fired` first, so
exactly one worker dies.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import write_clip
from embed import engine, store
from embed.engine import EmbedConfig, EmbedRefused
from embed.ray_engine import this_code
from ingest.api import ingest
from lake import catalog

ray = pytest.importorskip("ray")


def kill_on_second_read(folder: str):
    """A worker setup hook (pickled by value: a closure), patching how clips are read."""
    def setup() -> None:
        import os
        import signal

        import embed.loader as loader

        real, reads = loader.read_member, []

        def read_member(*args):
            reads.append(1)
            if len(reads) == 2:
                try:
                    os.rename(os.path.join(folder, "armed"), os.path.join(folder, "fired"))
                except FileNotFoundError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)  # mid-shard: one clip embedded, the part not written
            return real(*args)

        loader.read_member = read_member
    return setup


@pytest.fixture(scope="module")
def ray_hook(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-hook")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"py_modules": this_code(), "worker_process_setup_hook": kill_on_second_read(str(folder))})
    yield folder
    ray.shutdown()


@pytest.fixture
def small_lake(tmp_path):
    folder = tmp_path / "in"
    for i in range(8):
        write_clip(folder / f"c{i:02d}.wav", seconds=0.5 + 0.25 * i, rate=22050 if i % 2 else 16000,
                   channels=1 + i % 2, seed=i)
    ingest("small", source="folder", path=folder, shard_max_count=3, workers=1)
    return folder


def embed(**options):
    options = {"backbone": "logmel", "loader_workers": 0, "batch_size": 1, **options}
    return engine.run(EmbedConfig(dataset="small", **options))


def part_bytes() -> dict[str, bytes]:
    return {part.name: part.read_bytes() for part in store.list_parts("small", "logmel")}


def no_duplicates() -> bool:
    total, distinct = catalog.connect().execute(
        "SELECT count(*), count(DISTINCT (track_id, layer)) FROM embeddings WHERE backbone = 'logmel'").fetchone()
    return total == distinct == 8


def test_ray_and_local_workers_write_the_bytes_the_in_process_engine_writes(small_lake, ray_hook):
    assert embed().embedded == 8
    reference = part_bytes()
    assert len(reference) == 3

    pool = embed(workers=2, force=True)
    assert (pool.embedded, pool.workers) == (8, 2)
    assert part_bytes() == reference

    on_ray = embed(engine="ray", workers=2, force=True)
    assert (on_ray.embedded, on_ray.workers, on_ray.status) == (8, 2, "written")
    assert part_bytes() == reference
    assert embed(engine="ray").status == "unchanged"
    assert no_duplicates()


def test_a_ray_worker_killed_mid_shard_is_retried_and_nothing_is_duplicated(small_lake, ray_hook):
    embed()
    reference = part_bytes()
    (ray_hook / "armed").touch()
    result = embed(engine="ray", workers=1, force=True)
    assert (ray_hook / "fired").exists(), "the worker was not killed"
    assert (result.embedded, result.status) == (8, "written")
    assert part_bytes() == reference
    assert no_duplicates()


def test_refusals_inside_a_ray_worker_are_one_line_errors_in_the_driver(small_lake, ray_hook):
    with pytest.raises(EmbedRefused, match="layers=abc: no layer 'abc'"):
        embed(engine="ray", name="bad-layers", layers="abc")
    assert store.read_backbone("bad-layers") is None


def test_ray_options_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match="num_gpus=1: only for engine=ray"):
        EmbedConfig(dataset="small", backbone="logmel", num_gpus=1)
    with pytest.raises(ValueError, match="device=cuda with engine=ray: give each worker a GPU"):
        EmbedConfig(dataset="small", backbone="logmel", engine="ray", device="cuda")
    # the driver needs no GPU for workers that have one: bf16 is what they will compute in
    on_gpus = EmbedConfig(dataset="small", backbone="musicnn-mtt", engine="ray", num_gpus=1)
    assert (on_gpus.device, on_gpus.precision) == ("cuda", "bf16")
    assert EmbedConfig(dataset="small", backbone="musicnn-mtt", engine="ray").settings()["precision"] == "fp32"
