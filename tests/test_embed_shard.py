"""embed_shard: one shard's bytes in, one part out, nothing else in the lake touched; the
machine-dependent settings are decided by the worker, and the settings hash is not moved."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle

import pytest
import torch

from conftest import write_clip
from embed import engine, registry, shard, store
from embed.engine import EmbedConfig
from ingest.api import ingest
from lake import paths


@pytest.fixture
def small_lake(tmp_path):
    for i in range(5):
        write_clip(tmp_path / "in" / f"c{i:02d}.wav", seconds=0.5 + 0.25 * i, seed=i)
    ingest("small", source="folder", path=tmp_path / "in", shard_max_count=3, workers=1)


def lake_files() -> dict[str, int]:
    return {str(p.relative_to(paths.root())): p.stat().st_mtime_ns for p in paths.root().rglob("*") if p.is_file()}


def test_embed_shard_reads_its_shard_and_writes_exactly_its_part(small_lake):
    cfg = EmbedConfig(dataset="small", backbone="logmel", loader_workers=0)
    (first, second) = engine.plan(cfg, engine.dataset_clips("small")).tasks
    settings = pickle.loads(pickle.dumps(cfg.shard_settings()))  # what a worker process receives
    model = registry.load("logmel", "", "cpu", "fp32", None)
    before = lake_files()
    result = shard.embed_shard(first, settings, model)
    after = lake_files()
    assert {k for k in after if k not in before} == {str(store.part_path("small", "logmel", first.shard)
                                                         .relative_to(paths.root()))}
    assert all(after[k] == t for k, t in before.items()), "nothing else in the lake changes"
    assert (result.part, result.embedded, result.failures, result.unread) == (first.part, 3, [], [])
    contents = store.part_contents(store.part_path("small", "logmel", first.shard))
    assert contents.shard == first.shard and contents.settings == cfg.settings_hash()
    assert store.read_backbone("logmel") is None, "claiming the name is the worker's load step, not embed_shard's"


def test_the_worker_checks_its_own_device_before_loading(small_lake, monkeypatch):
    settings = EmbedConfig(dataset="small", backbone="logmel").shard_settings()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_gpu = dataclasses.replace(settings, device="cuda")  # as a Ray worker with num_gpus=1 gets it
    with pytest.raises(shard.EmbedRefused, match="device=cuda: torch finds no CUDA device here"):
        shard.load_model(on_gpu)
    assert store.read_backbone("logmel") is None
    resolved = shard.resolve_here(settings)
    assert (resolved.device, resolved.batch_size, resolved.settings_hash) == ("cpu", 1, settings.settings_hash)


def test_the_settings_hash_of_parts_already_in_lakes_still_matches():
    """What the hash covers did not move: parts written before the engine split keep counting as
    done, and no new key makes an old part silently 'other settings'."""
    before_the_split = {"backbone": "logmel", "layers": "default", "max_seconds": "30", "chunking": "crop",
                        "precision": "fp32"}
    old_hash = hashlib.sha256(json.dumps(before_the_split, sort_keys=True).encode()).hexdigest()[:16]
    cfg = EmbedConfig(dataset="small", backbone="logmel")
    assert cfg.settings() == before_the_split and cfg.settings_hash() == old_hash == "fcbcbdd94207f3c8"
    assert cfg.shard_settings().settings_hash == old_hash
