"""The embedding engine: a dataset's shards → one Parquet part of vectors per shard.

Embeddings are computed once. The job asks the lake what is already there (parts, and the
(track, sha256) pairs inside them), embeds only what is missing, and writes each shard's
part atomically when its last batch is done. A killed job therefore resumes at the first
unfinished shard; a finished job does nothing and says so; clips added to the dataset later
are embedded alone. Nothing here knows about a particular backbone beyond its contract.

Two jobs never work on one (dataset, name) at once: the second is refused at start (the job
lock). A name is shared by datasets, so its settings are checked and claimed in one step
under the name's own lock, and each part carries the hash of the settings it was made with.
Only a clip's own failure (its audio does not decode, its vector is not finite) is written
down; a clip the job could not read is left for the next run, and the job fails.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from embed import registry, store
from embed.backbone import Backbone
from embed.loader import BatchDataset, Clip, Decoded, loader, plan_batches
from lake import atomic, catalog, locks, paths
from lake.cli import make_console
from lake.errors import one_line

CLIP_FAILURE = "clip"  # the `kind` of every recorded failure: a property of the clip's own audio


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
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA where the backbone computes it
    loader_workers: int = 2      # decoding processes feeding the model
    workers: int = 1             # local engine processes, each taking whole shards
    slot: str = ""               # internal: "i/n" for worker i of n
    strict: bool = False
    force: bool = False          # drop this dataset's vectors for the name and recompute
    trust_remote_code: bool | None = None
    revision: str = ""           # hf: backbones: the hub commit to load; an alias defaults to its pin

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        self.backbone = registry.resolve(self.backbone)
        self.name = paths.check_name("name", self.name or registry.default_name(self.backbone))
        # Written as `not (x > 0)`: NaN fails every comparison, so `x <= 0` would let it through.
        if not (isinstance(self.max_seconds, numbers.Real) and math.isfinite(self.max_seconds)
                and self.max_seconds > 0):
            raise ValueError(f"max_seconds={self.max_seconds}: must be a positive, finite number of seconds")
        whole_number("workers", self.workers, minimum=1)
        whole_number("batch_size", self.batch_size, minimum=0)
        whole_number("loader_workers", self.loader_workers, minimum=0)
        self.device = resolve_device(self.device)
        self.precision = resolve_precision(self.backbone, self.precision, self.device)
        self.revision = registry.revision_for(self.backbone, self.revision)
        if self.batch_size == 0:
            # On a few CPU cores one clip per forward is as fast as any batch for a MERT-size
            # model (measured 0.82x at batch 4 on 2 cores); a GPU needs batches to be fed.
            self.batch_size = 16 if self.device.startswith("cuda") else 1

    def settings(self) -> dict[str, str]:
        """Every option that changes the vectors; a stored name keeps one set of these."""
        settings = {"backbone": self.backbone, "layers": self.layers or "default",
                    "max_seconds": f"{self.max_seconds:g}", "chunking": self.chunking,
                    "precision": self.precision}
        if self.revision:  # only when there is one, so names made before revisions keep their hash
            settings["revision"] = self.revision
        return settings

    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]


def whole_number(key: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not value >= minimum:
        raise ValueError(f"{key}={value}: must be a whole number, {minimum} or more")


def resolve_device(device: str) -> str:
    """`auto` → what this machine has; a CUDA device it does not have is refused before any loading."""
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


def resolve_precision(backbone: str, precision: str, device: str) -> str:
    """The precision the backbone will really compute in, which is what the settings record."""
    computes = registry.precisions(backbone)
    if precision == "auto":
        return "bf16" if device.startswith("cuda") and "bf16" in computes else "fp32"
    if precision not in computes:
        # Refused, not quietly recorded as fp32: two spellings of one computation would be two
        # "different" settings, and an explicit request that does something else is a lie too.
        raise ValueError(f"precision={precision}: {backbone} computes in {' and '.join(computes)} only, so "
                         f"{precision} would be recorded but not used: leave precision= out")
    return precision


@dataclass
class EmbedResult:
    dataset: str
    backbone: str
    status: Literal["written", "unchanged", "incomplete"]  # incomplete: some clips could not be read
    embedded: int = 0
    already: int = 0             # clips with a vector or a recorded failure before this run
    already_failed: int = 0      # of those, the ones whose recorded failure is their own audio's
    failures: list[dict[str, str]] = field(default_factory=list)  # this run's clip failures (recorded)
    unread: list[dict[str, str]] = field(default_factory=list)    # not recorded: the next run retries them
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0    # planning and model loading, before the first batch
    model_seconds: float = 0.0
    audio_seconds: float = 0.0
    report: str | None = None


class EmbedRefused(Exception):
    """The job would mix incompatible vectors under one name, or has nothing to read."""


@dataclass
class Plan:
    pending: dict[str, list[Clip]]   # by shard: clips with neither a vector nor a recorded failure
    done: int                        # current clips that have one of the two
    failed: list[dict[str, str]]     # the recorded failures among them


def dataset_clips(dataset: str) -> dict[str, list[Clip]]:
    con = catalog.connect()
    rows = con.execute(
        "SELECT track_id, sha256, shard, \"offset\", nbytes, duration_s FROM tracks "
        "WHERE dataset = $dataset ORDER BY shard, \"offset\"", {"dataset": dataset}).fetchall()
    by_shard: dict[str, list[Clip]] = defaultdict(list)
    for row in rows:
        by_shard[row[2]].append(Clip(*row))
    return dict(by_shard)


def refuse_other_settings(cfg: EmbedConfig, stored: dict | None) -> None:
    if stored is None:
        return
    theirs = json.loads(stored["settings"])
    if theirs == cfg.settings():
        return
    keys = dict.fromkeys([*cfg.settings(), *theirs])
    diff = ", ".join(f"{k}={theirs.get(k)} (now {cfg.settings().get(k)})" for k in keys
                     if theirs.get(k) != cfg.settings().get(k))
    raise EmbedRefused(
        f"backbone name {cfg.name!r} already holds vectors made with {diff}; mixing them would make "
        f"the vectors incomparable: pass name=NEW_NAME, or delete {store.backbone_part(cfg.name).parent} "
        f"and {paths.table_dir('embeddings')}/*/backbone={cfg.name} to start over"
    )


def check_settings(cfg: EmbedConfig) -> None:
    """Early refusal, before a model is loaded; `claim_name` is the check that decides."""
    refuse_other_settings(cfg, store.read_backbone(cfg.name))


def claim_name(cfg: EmbedConfig, model: Backbone) -> None:
    """Checks settings and weights against the name's provenance row, and writes the row when there
    is none, as one step under the name's lock: of two jobs (on one dataset or two) that both passed
    `check_settings` with different settings, the second to claim is refused before writing a part."""
    prov = model.provenance()
    with store.backbone_lock(cfg.name):
        stored = store.read_backbone(cfg.name)
        refuse_other_settings(cfg, stored)
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


def job_lock_path(dataset: str, name: str) -> Path:
    return paths.table_dir("embeddings") / f".{dataset}.{name}.lock"  # names hold no '.': unambiguous


@contextmanager
def job_lock(cfg: EmbedConfig) -> Iterator[None]:
    """One job per (dataset, name) at a time, refused at once rather than queued: a second job
    would only redo the first one's clips, or mix other settings into its parts. The workers of a
    `workers=N` job run under their parent's lock and never take it."""
    stack = ExitStack()
    try:
        stack.enter_context(locks.file_lock(job_lock_path(cfg.dataset, cfg.name), wait=False,
                                            holder=f"embed dataset={cfg.dataset} name={cfg.name}"))
    except locks.Busy as busy:
        raise EmbedRefused(f"another embed of {cfg.dataset} · {cfg.name} is running ({busy}); wait for it") from None
    with stack:
        yield


def plan(cfg: EmbedConfig, clips: dict[str, list[Clip]]) -> Plan:
    """What is left to embed under this name; a part made with other settings stops the job."""
    current = {(c.track_id, c.sha256) for shard in clips.values() for c in shard}
    done: set[tuple[str, str]] = set()
    failed: dict[tuple[str, str], dict] = {}
    for part in store.list_parts(cfg.dataset, cfg.name):
        contents = store.part_contents(part)  # ids, hashes and metadata only, not the vectors
        if contents.settings != cfg.settings_hash():
            raise EmbedRefused(
                f"{part}: made with other settings than {', '.join(f'{k}={v}' for k, v in cfg.settings().items())}, "
                f"so its vectors cannot count as done or be mixed with new ones: force=true recomputes "
                f"{cfg.dataset} · {cfg.name}, or pass name=NEW_NAME")
        pairs = contents.pairs
        if pairs - current and not cfg.slot:  # the parent prunes once; workers only read
            # Only a part that holds stale rows is read in full and rewritten.
            store.drop_stale(part, current)
            pairs &= current
        done |= pairs
        # Failures without the clip kind come from lakes that also recorded unreadable shards: retried.
        failed.update({(f["track_id"], f["sha256"]): f for f in contents.failures
                       if f.get("kind") == CLIP_FAILURE and (f["track_id"], f["sha256"]) in current})
    done |= set(failed)
    pending = {}
    for index, (shard, shard_clips) in enumerate(sorted(clips.items())):
        if cfg.slot and index % int(cfg.slot.split("/")[1]) != int(cfg.slot.split("/")[0]):
            continue
        todo = [c for c in shard_clips if (c.track_id, c.sha256) not in done]
        if todo:
            pending[shard] = todo
    return Plan(pending, len(done & current), list(failed.values()))


def clip_record(clip: Clip, reason: str, kind: str | None = CLIP_FAILURE) -> dict[str, str]:
    return {"track_id": clip.track_id, "sha256": clip.sha256, "reason": reason, **({"kind": kind} if kind else {})}


def embed_batch(model: Backbone, batch: list[Decoded], cfg: EmbedConfig) -> tuple[dict, list[dict], list[dict], float]:
    """Vectors per clip per layer for one decoded batch, its clip failures, the clips that could
    not be read, and seconds in the model."""
    good = [d for d in batch if d.error is None and d.unread is None]
    failures = [clip_record(d.clip, d.error) for d in batch if d.error]
    unread = [clip_record(d.clip, d.unread, kind=None) for d in batch if d.unread]
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
            failures.append(clip_record(d.clip, "vector contains NaN or Inf"))
    return vectors, failures, unread, model_seconds


def write_shard(cfg: EmbedConfig, model: Backbone, shard: str, shard_clips: list[Clip],
                vectors: dict[str, dict[str, np.ndarray]], failures: list[dict]) -> str:
    """The shard's part; when it has one already, the new rows join it (store.write_part)."""
    ordered = [c for c in shard_clips if c.track_id in vectors]
    layers = {
        layer: ([c.track_id for c in ordered], [c.sha256 for c in ordered],
                np.stack([vectors[c.track_id][layer] for c in ordered]) if ordered
                else np.empty((0, model.dim), np.float32))
        for layer in model.layers
    }
    target = store.part_path(cfg.dataset, cfg.name, shard)
    store.write_part(target, cfg.dataset, cfg.name, model.dim, layers, shard, failures, cfg.settings_hash(),
                     order=[c.track_id for c in shard_clips])
    return str(target)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("[red]{task.fields[bad]}"),
                    TimeElapsedColumn(), console=console)


def load_model(cfg: EmbedConfig) -> Backbone:
    try:
        return registry.load(cfg.backbone, cfg.layers, cfg.device, cfg.precision, cfg.trust_remote_code,
                             cfg.revision)
    except ValueError as err:  # an option this model cannot honour, e.g. a layer it does not have
        raise EmbedRefused(f"{cfg.backbone}: {one_line(err)}") from None


def run(cfg: EmbedConfig, console: Console | None = None,
        spawn_workers: Callable[[], None] | None = None) -> EmbedResult:
    """Embeds what is missing. `spawn_workers`, for `workers=N`, runs the worker processes once the
    job holds its lock and has pruned; this process then finishes whatever they left."""
    console = console or make_console(stderr=True)
    started = time.perf_counter()
    clips = dataset_clips(cfg.dataset)
    if not clips:
        raise EmbedRefused(f"dataset {cfg.dataset!r} has no tracks: ingest it first "
                           f"(just ingest dataset={cfg.dataset} source=folder path=DIR)")
    if cfg.slot:  # a worker: its parent holds the job lock, checked the settings and pruned
        return embed_pending(cfg, clips, plan(cfg, clips), console, started)
    with job_lock(cfg):
        check_settings(cfg)
        if cfg.force:
            for part in store.list_parts(cfg.dataset, cfg.name):
                part.unlink()
        work = plan(cfg, clips)
        if work.pending and spawn_workers:
            refuse_if_strict(cfg, work)
            spawn_workers()
            work = plan(cfg, clips)
        return embed_pending(cfg, clips, work, console, started)


def refuse_if_strict(cfg: EmbedConfig, work: Plan) -> None:
    """strict=true: a clip without a vector fails the job, also when an earlier run recorded it."""
    if cfg.strict and work.failed:
        first = work.failed[0]
        raise EmbedRefused(f"strict=true: {first['track_id']}: {first['reason']} (recorded by an earlier run, "
                           f"with {len(work.failed) - 1} more; force=true tries them again)")


def embed_pending(cfg: EmbedConfig, clips: dict[str, list[Clip]], work: Plan, console: Console,
                  started: float) -> EmbedResult:
    refuse_if_strict(cfg, work)
    result = EmbedResult(cfg.dataset, cfg.name, "unchanged", already=work.done, already_failed=len(work.failed))
    pending = work.pending
    if not pending:
        if not cfg.slot and store.read_backbone(cfg.name) is None:
            # Every vector is there but the provenance row is not (set aside as damaged): the
            # views need its width and the heads its settings, so the model states them again.
            claim_name(cfg, load_model(cfg))
        result.seconds = time.perf_counter() - started
        return result
    model = load_model(cfg)
    result.load_seconds = time.perf_counter() - started
    limit = getattr(model, "max_seconds", None)
    if limit and cfg.max_seconds > limit:
        raise EmbedRefused(f"{cfg.backbone} takes at most {limit:g} s per input: pass max_seconds={limit:g} "
                           "(chunking=mean averages the chunks of longer clips)")
    claim_name(cfg, model)

    shards = list(pending)
    batches = [(shard, batch) for shard in shards
               for batch in plan_batches(pending[shard], cfg.batch_size, cfg.max_seconds)]
    remaining = defaultdict(int)
    for shard, _ in batches:
        remaining[shard] += 1
    dataset = BatchDataset(paths.root(), [b for _, b in batches], model.sample_rate, cfg.max_seconds, cfg.chunking)
    vectors: dict[str, dict] = defaultdict(dict)
    failures: dict[str, list] = defaultdict(list)
    total = sum(len(v) for v in pending.values())
    # One autocast region for the whole job: leaving the outermost region drops autocast's cache
    # of bf16 weight copies, and re-casting ~100M weights per batch cost ~10% of a forward.
    autocast = (torch.autocast(device_type=cfg.device.split(":")[0], dtype=torch.bfloat16)
                if cfg.precision == "bf16" else nullcontext())
    with _progress(console) as progress, autocast:
        task = progress.add_task(f"embed {cfg.dataset} · {cfg.name}", total=total, rate="", bad="")
        for (shard, _), decoded in zip(batches, loader(dataset, cfg.loader_workers)):
            got, bad, unread, model_seconds = embed_batch(model, decoded, cfg)
            if bad and cfg.strict:
                raise EmbedRefused(f"strict=true: {bad[0]['track_id']}: {bad[0]['reason']}")
            vectors[shard].update(got)
            failures[shard].extend(bad)
            result.model_seconds += model_seconds
            result.audio_seconds += sum(min(d.clip.duration_s, cfg.max_seconds) if cfg.chunking == "crop"
                                        else d.clip.duration_s for d in decoded if d.chunks)
            result.embedded += len(got)
            result.failures.extend(bad)
            result.unread.extend(unread)
            remaining[shard] -= 1
            if remaining[shard] == 0:
                shard_vectors, shard_failures = vectors.pop(shard), failures.pop(shard)
                if shard_vectors or shard_failures:  # a shard none of whose clips could be read gets no part
                    result.parts.append(write_shard(cfg, model, shard, clips[shard], shard_vectors, shard_failures))
            elapsed = time.perf_counter() - started
            trouble = [f"{len(result.failures)} failed" if result.failures else "",
                       f"{len(result.unread)} unread" if result.unread else ""]
            progress.update(task, advance=len(decoded),
                            rate=f"{result.embedded / elapsed:.1f} clips/s · {result.audio_seconds / elapsed:.0f} audio-s/s",
                            bad=" · ".join(t for t in trouble if t))
    result.status = "incomplete" if result.unread else "written"
    result.seconds = time.perf_counter() - started
    return result


def write_report(cfg: EmbedConfig) -> str:
    """All failures recorded in this dataset's parts for the name, in one file a person can read."""
    failures = []
    for part in store.list_parts(cfg.dataset, cfg.name):
        failures.extend(store.part_contents(part).failures)
    target = paths.reports_dir(cfg.dataset) / f"embed-{cfg.name}.json"
    atomic.write_json({"dataset": cfg.dataset, "backbone": cfg.name, "settings": cfg.settings(),
                       "failures": failures}, target)
    return str(target)
