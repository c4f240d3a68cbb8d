"""One shard's clips → one Parquet part: the unit of work every engine runs.

`embed_shard(task, settings, model)` reads the clips' bytes from their shard, embeds them and
writes the shard's part atomically (merged with the part the shard already has, when a
retry adds clips to it); it touches nothing else in the lake. The in-process engine, the
local worker processes of `workers=N` and the Ray actors of `engine=ray` all call it, each
from a `ShardWorker` that loads the model once and serves shard after shard.

Where the work runs, the worker resolves what depends on the machine: the CUDA device it
was given (a Ray worker sees only its own GPUs), and the batch size that device wants. The
settings hash was fixed by the driver from what changes the vectors (never the driver's
hardware); a worker that cannot compute them that way fails instead of writing other vectors.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from embed import registry, store
from embed.backbone import Backbone
from embed.loader import BatchDataset, Clip, Decoded, loader, plan_batches
from lake import storage
from lake.errors import one_line

CLIP_FAILURE = "clip"  # the `kind` of every recorded failure: a property of the clip's own audio
CUDA_BATCH = 16        # clips per forward on a GPU, which needs batches to be fed
CPU_BATCH = 1          # on a few CPU cores a MERT-size forward is no faster batched (0.82x at 4 on 2 cores)


class EmbedRefused(Exception):
    """The job would mix incompatible vectors under one name, or cannot run as asked."""


@dataclass(frozen=True)
class ShardSettings:
    """Everything a worker needs for any shard of one job: plain values, so it pickles to a
    process or a Ray actor unchanged. `settings` is what the vectors depend on (its hash is in
    every part); the rest says how to compute them here."""

    root: str                    # the lake's root, as the driver sees it
    dataset: str
    name: str
    backbone: str
    layers: str
    max_seconds: float
    chunking: str
    precision: str               # fp32 | bf16: what the backbone computes in (part of `settings`)
    device: str                  # cpu | cuda | cuda:N; checked where the work runs
    batch_size: int              # 0: by the device the worker gets
    loader_workers: int
    strict: bool
    trust_remote_code: bool | None
    revision: str
    settings: str                # JSON of the settings that change the vectors
    settings_hash: str

    def vector_settings(self) -> dict[str, str]:
        return json.loads(self.settings)


@dataclass(frozen=True)
class ShardTask:
    shard: str                   # the shard file, relative to the lake root (as in `tracks`)
    part: str                    # the part to write (absolute)
    clips: tuple[Clip, ...]      # the clips still without a vector or a recorded failure
    order: tuple[str, ...]       # every track id of the shard: the part's row order


@dataclass
class ShardResult:
    shard: str
    part: str | None             # None: nothing of the shard could be read, no part written
    embedded: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)  # recorded in the part
    unread: list[dict[str, str]] = field(default_factory=list)    # not recorded: retried by the next run
    model_seconds: float = 0.0
    audio_seconds: float = 0.0
    load_seconds: float = 0.0    # loading the worker's model before this shard (0 once loaded)


def clip_record(clip: Clip, reason: str, kind: str | None = CLIP_FAILURE) -> dict[str, str]:
    return {"track_id": clip.track_id, "sha256": clip.sha256, "reason": reason, **({"kind": kind} if kind else {})}


def check_device(device: str) -> str:
    """`device` as this machine can honour it; a CUDA device it does not have is refused in one line."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", device):
        raise ValueError(f"device={device}: use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device}: torch finds no CUDA device here (no GPU or driver, or a CPU-only "
                             "torch build): use device=cpu or device=auto")
        index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise ValueError(f"device={device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def resolve_here(settings: ShardSettings) -> ShardSettings:
    """The settings with this machine's device checked and the batch size it wants; the settings
    hash does not change (neither is in it)."""
    try:
        device = check_device(settings.device)
    except ValueError as err:
        raise EmbedRefused(str(err)) from None
    size = settings.batch_size or (CUDA_BATCH if device.startswith("cuda") else CPU_BATCH)
    return replace(settings, device=device, batch_size=size)


def load_model(settings: ShardSettings) -> Backbone:
    """The backbone on this worker's device (`claim_name` then checks it against the name)."""
    settings = resolve_here(settings)
    try:
        model = registry.load(settings.backbone, settings.layers, settings.device, settings.precision,
                              settings.trust_remote_code, settings.revision)
    except ValueError as err:  # an option this model cannot honour, e.g. a layer it does not have
        raise EmbedRefused(f"{settings.backbone}: {one_line(err)}") from None
    # A backbone that knows what its weights are (a LoRA run's adapter) must be the one the job
    # planned with: vectors of another adapter must not land under this job's settings hash.
    identity = model.identity() if hasattr(model, "identity") else {}
    planned = settings.vector_settings()
    changed = [key for key, value in identity.items() if planned.get(key) != value]
    if changed:
        raise EmbedRefused(f"{settings.backbone}: {changed[0]} is now {identity[changed[0]]}, but the job was planned "
                           f"with {planned.get(changed[0])}: run it again")
    limit = getattr(model, "max_seconds", None)
    if limit and settings.max_seconds > limit:
        raise EmbedRefused(f"{settings.backbone} takes at most {limit:g} s per input: pass max_seconds={limit:g} "
                           "(chunking=mean averages the chunks of longer clips)")
    return model


# ---- the backbone name: one set of settings and weights per name --------------------------

def refuse_other_settings(settings: ShardSettings, stored: dict | None) -> None:
    if stored is None:
        return
    ours, theirs = settings.vector_settings(), json.loads(stored["settings"])
    if theirs == ours:
        return
    keys = dict.fromkeys([*ours, *theirs])
    diff = ", ".join(f"{k}={theirs.get(k)} (now {ours.get(k)})" for k in keys if theirs.get(k) != ours.get(k))
    raise EmbedRefused(
        f"backbone name {settings.name!r} already holds vectors made with {diff}; mixing them would make "
        f"the vectors incomparable: pass name=NEW_NAME, or delete {store.backbone_part(settings.name).parent} "
        f"and {store.parts_dir('*', settings.name)} to start over"
    )


def claim_name(settings: ShardSettings, model: Backbone) -> None:
    """Checks settings and weights against the name's provenance row, and writes the row when there
    is none, as one step under the name's lock: of two jobs (on one dataset or two) that both passed
    the early check with different settings, the second to claim is refused before writing a part.
    Every worker of a job claims before its first part; all but the first find their own row."""
    prov = model.provenance()
    with store.backbone_lock(settings.name):
        stored = store.read_backbone(settings.name)
        refuse_other_settings(settings, stored)
        if stored and stored["revision"] != prov.revision:
            raise EmbedRefused(
                f"backbone name {settings.name!r} holds vectors from weights {stored['revision']}, but the model "
                f"now loads {prov.revision}: pass name=NEW_NAME for the new weights")
        if stored is None:
            store.write_backbone({
                "backbone": settings.name, "spec": settings.backbone, "model_id": prov.model_id,
                "revision": prov.revision, "sample_rate": prov.sample_rate, "dim": prov.dim,
                "layers": list(prov.layers), "pooling": prov.pooling, "max_seconds": settings.max_seconds,
                "chunking": settings.chunking, "precision": settings.precision, "settings": settings.settings,
                "packages": json.dumps({**prov.packages, **prov.options}, sort_keys=True),
            })


# ---- the work ------------------------------------------------------------------------------

def embed_batch(model: Backbone, batch: list[Decoded], size: int) -> tuple[dict, list[dict], list[dict], float]:
    """Vectors per clip per layer for one decoded batch, its clip failures, the clips that could
    not be read, and seconds in the model."""
    good = [d for d in batch if d.error is None and d.unread is None]
    failures = [clip_record(d.clip, d.error) for d in batch if d.error]
    unread = [clip_record(d.clip, d.unread, kind=None) for d in batch if d.unread]
    chunks = [chunk for d in good for chunk in d.chunks]
    per_layer: dict[str, list[np.ndarray]] = defaultdict(list)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(chunks), size):
            for layer, vectors in model.embed(chunks[start:start + size]).items():
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
            failures.append(clip_record(d.clip, "vector contains NaN or Inf"))
    return vectors, failures, unread, model_seconds


def embed_shard(task: ShardTask, settings: ShardSettings, model: Backbone,
                progress: Callable[[int], None] | None = None) -> ShardResult:
    """Embeds `task.clips` and writes the shard's part. A clip whose own audio fails is recorded
    in the part (strict=true refuses instead); a clip that could not be read is only reported."""
    settings = resolve_here(settings)
    size = settings.batch_size
    batches = plan_batches(list(task.clips), size, settings.max_seconds)
    dataset = BatchDataset(storage.path(settings.root), batches, model.sample_rate, settings.max_seconds, settings.chunking)
    result = ShardResult(task.shard, None)
    vectors: dict[str, dict[str, np.ndarray]] = {}
    # One autocast region for the shard: leaving the outermost region drops autocast's cache of
    # bf16 weight copies, and re-casting ~100M weights per batch cost ~10% of a forward.
    autocast = (torch.autocast(device_type=settings.device.split(":")[0], dtype=torch.bfloat16)
                if settings.precision == "bf16" else nullcontext())
    with autocast:
        for decoded in loader(dataset, settings.loader_workers):
            got, bad, unread, seconds = embed_batch(model, decoded, size)
            if bad and settings.strict:
                raise EmbedRefused(f"strict=true: {bad[0]['track_id']}: {bad[0]['reason']}")
            vectors.update(got)
            result.failures.extend(bad)
            result.unread.extend(unread)
            result.model_seconds += seconds
            result.audio_seconds += sum(min(d.clip.duration_s, settings.max_seconds) if settings.chunking == "crop"
                                        else d.clip.duration_s for d in decoded if d.chunks)
            if progress:
                progress(len(decoded))
    result.embedded = len(vectors)
    if vectors or result.failures:  # a shard none of whose clips could be read gets no part
        result.part = str(write_shard_part(task, settings, model, vectors, result.failures))
    return result


def write_shard_part(task: ShardTask, settings: ShardSettings, model: Backbone,
                     vectors: dict[str, dict[str, np.ndarray]], failures: list[dict]) -> Path:
    """The shard's part; when it has one already, the new rows join it (store.write_part)."""
    ordered = [c for c in task.clips if c.track_id in vectors]
    layers = {
        layer: ([c.track_id for c in ordered], [c.sha256 for c in ordered],
                np.stack([vectors[c.track_id][layer] for c in ordered]) if ordered
                else np.empty((0, model.dim), np.float32))
        for layer in model.layers
    }
    return store.write_part(storage.path(task.part), settings.dataset, settings.name, model.dim, layers, task.shard,
                            failures, settings.settings_hash, order=task.order)


class ShardWorker:
    """A model loaded once, serving shard after shard: what the job's own process, each local
    worker process and each Ray actor holds."""

    def __init__(self, settings: ShardSettings, threads: int = 0, own_process: bool = False):
        if own_process:  # a process of this job alone: it works in the driver's lake
            os.environ["AUDIOLAKE_ROOT"] = settings.root
        if threads:
            torch.set_num_threads(threads)
        self.settings = settings
        self.model: Backbone | None = None

    def embed(self, task: ShardTask, progress: Callable[[int], None] | None = None) -> ShardResult:
        load_seconds = 0.0
        if self.model is None:
            started = time.perf_counter()
            model = load_model(self.settings)
            claim_name(self.settings, model)  # before this worker writes its first part
            self.model = model
            load_seconds = time.perf_counter() - started
        result = embed_shard(task, self.settings, self.model, progress)
        result.load_seconds = load_seconds
        return result
