"""The embedding engine: a dataset's shards → one Parquet part of vectors per shard.

Embeddings are computed once. The job asks the lake what is already there (parts, and the
(track, sha256) pairs inside them), embeds only what is missing, and writes each shard's
part atomically when its last batch is done. A killed job therefore resumes at the first
unfinished shard; a finished job does nothing and says so; clips added to the dataset later
are embedded alone. Nothing here knows about a particular backbone beyond its contract.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from rich.console import Console

from lake.cli import make_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from embed import registry, store
from embed.backbone import Backbone
from embed.loader import BatchDataset, Clip, Decoded, loader, plan_batches
from lake import atomic, catalog, paths


@dataclass
class EmbedConfig:
    dataset: str
    backbone: str = "musicnn-mtt"
    name: str = ""               # stored under this backbone name; default from `backbone`
    layers: str = ""             # last|all|3,6,9|<named>; empty: the backbone's default
    max_seconds: float = 30.0
    chunking: Literal["crop", "mean"] = "crop"
    batch_size: int = 0          # clips per forward; 0: 1 on CPU (batching buys nothing there), 16 on CUDA
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    loader_workers: int = 2      # decoding processes feeding the model
    workers: int = 1             # local engine processes, each taking whole shards
    slot: str = ""               # internal: "i/n" for worker i of n
    strict: bool = False
    force: bool = False          # drop this dataset's vectors for the name and recompute
    trust_remote_code: bool | None = None

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        self.backbone = registry.resolve(self.backbone)
        self.name = paths.check_name("name", self.name or registry.default_name(self.backbone))
        for key in ("max_seconds", "workers"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}={getattr(self, key)}: must be positive")
        if self.batch_size < 0:
            raise ValueError(f"batch_size={self.batch_size}: must be 0 (auto) or more")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers={self.loader_workers}: must be 0 or more")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.precision == "auto":
            self.precision = "bf16" if self.device.startswith("cuda") else "fp32"
        if self.batch_size == 0:
            # On a few CPU cores one clip per forward is as fast as any batch for a MERT-size
            # model (measured 0.82x at batch 4 on 2 cores); a GPU needs batches to be fed.
            self.batch_size = 16 if self.device.startswith("cuda") else 1

    def settings(self) -> dict[str, str]:
        """Every option that changes the vectors; a stored name keeps one set of these."""
        return {"backbone": self.backbone, "layers": self.layers or "default",
                "max_seconds": f"{self.max_seconds:g}", "chunking": self.chunking,
                "precision": self.precision}

    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class EmbedResult:
    dataset: str
    backbone: str
    status: Literal["written", "unchanged"]
    embedded: int = 0
    already: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0    # planning and model loading, before the first batch
    model_seconds: float = 0.0
    audio_seconds: float = 0.0
    report: str | None = None


class EmbedRefused(Exception):
    """The job would mix incompatible vectors under one name, or has nothing to read."""


def dataset_clips(dataset: str) -> dict[str, list[Clip]]:
    con = catalog.connect()
    rows = con.execute(
        "SELECT track_id, sha256, shard, \"offset\", nbytes, duration_s FROM tracks "
        "WHERE dataset = $dataset ORDER BY shard, \"offset\"", {"dataset": dataset}).fetchall()
    by_shard: dict[str, list[Clip]] = defaultdict(list)
    for row in rows:
        by_shard[row[2]].append(Clip(*row))
    return dict(by_shard)


def check_settings(cfg: EmbedConfig) -> None:
    stored = store.read_backbone(cfg.name)
    if stored and json.loads(stored["settings"]) != cfg.settings():
        theirs = json.loads(stored["settings"])
        diff = ", ".join(f"{k}={theirs.get(k)} (now {v})" for k, v in cfg.settings().items() if theirs.get(k) != v)
        raise EmbedRefused(
            f"backbone name {cfg.name!r} already holds vectors made with {diff}; mixing them would make "
            f"the vectors incomparable: pass name=NEW_NAME, or delete {store.backbone_part(cfg.name).parent} "
            f"and {paths.table_dir('embeddings')}/*/backbone={cfg.name} to start over"
        )


def record_provenance(cfg: EmbedConfig, model: Backbone) -> None:
    prov = model.provenance()
    with store.backbone_lock(cfg.name):
        stored = store.read_backbone(cfg.name)
        if stored and stored["revision"] != prov.revision:
            raise EmbedRefused(
                f"backbone name {cfg.name!r} holds vectors from weights {stored['revision']}, but the model now "
                f"loads {prov.revision}: pass name=NEW_NAME for the new weights")
        if stored is None:
            store.write_backbone({
                "backbone": cfg.name, "spec": cfg.backbone, "model_id": prov.model_id,
                "revision": prov.revision, "sample_rate": prov.sample_rate, "dim": prov.dim,
                "layers": list(prov.layers), "pooling": prov.pooling, "max_seconds": cfg.max_seconds,
                "chunking": cfg.chunking, "precision": cfg.precision,
                "settings": json.dumps(cfg.settings(), sort_keys=True),
                "packages": json.dumps({**prov.packages, **prov.options}, sort_keys=True),
            })


def pending_work(cfg: EmbedConfig, clips: dict[str, list[Clip]]) -> tuple[dict[str, list[Clip]], int]:
    """Clips without vectors (or a recorded failure) under this name, by shard; and how many are done."""
    current = {(c.track_id, c.sha256) for shard in clips.values() for c in shard}
    done: set[tuple[str, str]] = set()
    for part in store.list_parts(cfg.dataset, cfg.name):
        pairs, failures, _ = store.part_contents(part)  # ids and hashes only, not the vectors
        if pairs - current and not cfg.slot:  # the parent prunes once; workers only read
            # Only a part that holds stale rows is read in full and rewritten.
            store.drop_stale(part, current)
            pairs &= current
        done |= pairs | {(f["track_id"], f["sha256"]) for f in failures}
    pending = {}
    for index, (shard, shard_clips) in enumerate(sorted(clips.items())):
        if cfg.slot and index % int(cfg.slot.split("/")[1]) != int(cfg.slot.split("/")[0]):
            continue
        todo = [c for c in shard_clips if (c.track_id, c.sha256) not in done]
        if todo:
            pending[shard] = todo
    return pending, len(done & current)


def embed_batch(model: Backbone, batch: list[Decoded], cfg: EmbedConfig) -> tuple[dict, list[dict], float]:
    """Vectors per clip per layer for one decoded batch, failures, and seconds in the model."""
    good = [d for d in batch if d.error is None]
    failures = [{"track_id": d.clip.track_id, "sha256": d.clip.sha256, "reason": d.error} for d in batch if d.error]
    chunks = [chunk for d in good for chunk in d.chunks]
    per_layer: dict[str, list[np.ndarray]] = defaultdict(list)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(chunks), cfg.batch_size):
            for layer, vectors in model.embed(chunks[start:start + cfg.batch_size]).items():
                per_layer[layer].append(np.asarray(vectors, dtype=np.float32))
    model_seconds = time.perf_counter() - started
    stacked = {layer: np.concatenate(parts) if parts else np.empty((0, model.dim), np.float32)
               for layer, parts in per_layer.items()}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    position = 0
    for d in good:
        n = len(d.chunks)
        clip_vectors = {layer: m[position:position + n].mean(axis=0) for layer, m in stacked.items()}
        position += n
        if all(np.isfinite(v).all() for v in clip_vectors.values()):
            vectors[d.clip.track_id] = clip_vectors
        else:
            failures.append({"track_id": d.clip.track_id, "sha256": d.clip.sha256,
                             "reason": "vector contains NaN or Inf"})
    return vectors, failures, model_seconds


def write_shard(cfg: EmbedConfig, model: Backbone, shard: str, clips: list[Clip],
                vectors: dict[str, dict[str, np.ndarray]], failures: list[dict]) -> str:
    ordered = [c for c in clips if c.track_id in vectors]
    layers = {
        layer: ([c.track_id for c in ordered], [c.sha256 for c in ordered],
                np.stack([vectors[c.track_id][layer] for c in ordered]) if ordered
                else np.empty((0, model.dim), np.float32))
        for layer in model.layers
    }
    target = store.part_path(cfg.dataset, cfg.name, shard)
    store.write_part(target, cfg.dataset, cfg.name, model.dim, layers, shard, failures, cfg.settings_hash())
    return str(target)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("[red]{task.fields[bad]}"),
                    TimeElapsedColumn(), console=console)


def run(cfg: EmbedConfig, console: Console | None = None) -> EmbedResult:
    console = console or make_console(stderr=True)
    started = time.perf_counter()
    clips = dataset_clips(cfg.dataset)
    if not clips:
        raise EmbedRefused(f"dataset {cfg.dataset!r} has no tracks: ingest it first "
                           f"(just ingest dataset={cfg.dataset} source=folder path=DIR)")
    check_settings(cfg)
    if cfg.force and not cfg.slot:
        for part in store.list_parts(cfg.dataset, cfg.name):
            part.unlink()
    pending, already = pending_work(cfg, clips)
    result = EmbedResult(cfg.dataset, cfg.name, "unchanged", already=already)
    if not pending:
        result.seconds = time.perf_counter() - started
        return result
    model = registry.load(cfg.backbone, cfg.layers, cfg.device, cfg.precision, cfg.trust_remote_code)
    result.load_seconds = time.perf_counter() - started
    limit = getattr(model, "max_seconds", None)
    if limit and cfg.max_seconds > limit:
        raise EmbedRefused(f"{cfg.backbone} takes at most {limit:g} s per input: pass max_seconds={limit:g} "
                           "(chunking=mean averages the chunks of longer clips)")
    record_provenance(cfg, model)

    shards = list(pending)
    batches = [(shard, batch) for shard in shards
               for batch in plan_batches(pending[shard], cfg.batch_size, cfg.max_seconds)]
    remaining = defaultdict(int)
    for shard, _ in batches:
        remaining[shard] += 1
    dataset = BatchDataset(paths.root(), [b for _, b in batches], model.sample_rate, cfg.max_seconds, cfg.chunking)
    vectors: dict[str, dict] = defaultdict(dict)
    failures: dict[str, list] = defaultdict(list)
    result.status = "written"
    total = sum(len(v) for v in pending.values())
    # One autocast region for the whole job: leaving the outermost region drops autocast's cache
    # of bf16 weight copies, and re-casting ~100M weights per batch cost ~10% of a forward.
    autocast = (torch.autocast(device_type=cfg.device.split(":")[0], dtype=torch.bfloat16)
                if cfg.precision == "bf16" else nullcontext())
    with _progress(console) as progress, autocast:
        task = progress.add_task(f"embed {cfg.dataset} · {cfg.name}", total=total, rate="", bad="")
        for (shard, _), decoded in zip(batches, loader(dataset, cfg.loader_workers)):
            got, bad, model_seconds = embed_batch(model, decoded, cfg)
            if bad and cfg.strict:
                raise EmbedRefused(f"strict=true: {bad[0]['track_id']}: {bad[0]['reason']}")
            vectors[shard].update(got)
            failures[shard].extend(bad)
            result.model_seconds += model_seconds
            result.audio_seconds += sum(min(d.clip.duration_s, cfg.max_seconds) if cfg.chunking == "crop"
                                        else d.clip.duration_s for d in decoded if d.error is None)
            result.embedded += len(got)
            result.failures.extend(bad)
            remaining[shard] -= 1
            if remaining[shard] == 0:
                result.parts.append(write_shard(cfg, model, shard, pending[shard], vectors.pop(shard),
                                                failures.pop(shard)))
            elapsed = time.perf_counter() - started
            progress.update(task, advance=len(decoded),
                            rate=f"{result.embedded / elapsed:.1f} clips/s · {result.audio_seconds / elapsed:.0f} audio-s/s",
                            bad=f"{len(result.failures)} failed" if result.failures else "")
    result.seconds = time.perf_counter() - started
    return result


def write_report(cfg: EmbedConfig) -> str:
    """All failures recorded in this dataset's parts for the name, in one file a person can read."""
    failures = []
    for part in store.list_parts(cfg.dataset, cfg.name):
        failures.extend(store.part_contents(part)[1])
    target = paths.reports_dir(cfg.dataset) / f"embed-{cfg.name}.json"
    atomic.write_json({"dataset": cfg.dataset, "backbone": cfg.name, "settings": cfg.settings(),
                       "failures": failures}, target)
    return str(target)

