"""The embedding engine: a dataset's shards → one Parquet part of vectors per shard.

A job is three steps. Plan: ask the lake what is already there (parts, and the (track,
sha256) pairs inside them) and list the shards with clips still to embed. Work: each such
shard goes to `embed.shard.embed_shard`, which reads its clips' bytes and writes its part
atomically; this process runs them itself, or hands them to `workers=N` local processes or
to Ray actors (`engine=ray`), and every one of those calls the same function. Finish: the
counts, the failure report and the catalog. A killed job therefore resumes at the first
unfinished shard; a finished job does nothing and says so; clips added to the dataset later
are embedded alone. Nothing here knows about a particular backbone beyond its contract.

Two jobs never work on one (dataset, name) at once: the second is refused at start (the job
lock, held by this process while any engine works). A name is shared by datasets, so its
settings are checked and claimed in one step under the name's own lock, and each part
carries the hash of the settings it was made with. Only a clip's own failure (its audio does
not decode, its vector is not finite) is written down; a clip the job could not read is left
for the next run, and the job fails.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from embed import registry, store
from embed.loader import Clip
from embed.shard import (CLIP_FAILURE, EmbedRefused, ShardResult, ShardSettings, ShardTask, ShardWorker,
                         check_device, claim_name, load_model, refuse_other_settings)
from lake import atomic, catalog, locks, paths
from lake.cli import make_console
from lake.parts import table_parts

__all__ = ["CLIP_FAILURE", "EmbedConfig", "EmbedRefused", "EmbedResult", "Plan", "dataset_clips", "finish",
           "job_lock_path", "plan", "run", "write_report"]


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
    loader_workers: int = 2      # decoding processes feeding each model
    workers: int = 1             # models working at once, each taking whole shards: processes here, or Ray actors
    engine: Literal["local", "ray"] = "local"
    ray_address: str = ""        # engine=ray: an existing cluster (host:port, ray://host:port, auto); empty: start one here
    num_cpus: float | None = None  # engine=ray: CPUs per worker (default 1; also its torch threads)
    num_gpus: float | None = None  # engine=ray: GPUs per worker (default 0; > 0 computes on CUDA)
    strict: bool = False
    force: bool = False          # drop this dataset's vectors for the name and recompute
    trust_remote_code: bool | None = None
    revision: str = ""           # hf: backbones: the hub commit to load; an alias defaults to its pin
    # what the vectors depend on beyond the spelling (a LoRA run's adapter hash): read once here,
    # since settings_hash() is asked for every stored part
    backbone_settings: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        self.backbone = registry.resolve(self.backbone)
        if registry.entry(self.backbone).reads != "audio":  # python -m embed runs those through their module
            raise ValueError(f"backbone={self.backbone} learns from the {registry.entry(self.backbone).reads} "
                             "table, not from audio: it is not embedded clip by clip")
        self.name = paths.check_name("name", self.name or registry.default_name(self.backbone))
        # Written as `not (x > 0)`: NaN fails every comparison, so `x <= 0` would let it through.
        if not (isinstance(self.max_seconds, numbers.Real) and math.isfinite(self.max_seconds)
                and self.max_seconds > 0):
            raise ValueError(f"max_seconds={self.max_seconds}: must be a positive, finite number of seconds")
        whole_number("workers", self.workers, minimum=1)
        whole_number("batch_size", self.batch_size, minimum=0)
        whole_number("loader_workers", self.loader_workers, minimum=0)
        self.device = self.work_device()
        self.precision = resolve_precision(self.backbone, self.precision, self.device)
        self.revision = registry.revision_for(self.backbone, self.revision)
        self.backbone_settings = registry.vector_settings(self.backbone)

    def work_device(self) -> str:
        """The device kind the work will run on, decided without asking the driver's hardware
        unless the work runs here: the local engine computes on this machine; a Ray worker on
        what its resources give it (num_gpus). Each worker checks its device again (shard.py)."""
        if self.engine == "local":
            for key in ("ray_address", "num_cpus", "num_gpus"):
                if getattr(self, key) not in (None, ""):
                    raise ValueError(f"{key}={getattr(self, key)}: only for engine=ray")
            return check_device(self.device)
        self.num_cpus = 1.0 if self.num_cpus is None else self.num_cpus
        self.num_gpus = 0.0 if self.num_gpus is None else self.num_gpus
        if not (math.isfinite(self.num_cpus) and self.num_cpus > 0):
            raise ValueError(f"num_cpus={self.num_cpus}: must be a positive number of CPUs per worker")
        if not (math.isfinite(self.num_gpus) and self.num_gpus >= 0):
            raise ValueError(f"num_gpus={self.num_gpus}: must be 0 or more GPUs per worker")
        if not re.fullmatch(r"auto|cpu|cuda", self.device):
            raise ValueError(f"device={self.device}: with engine=ray use auto, cpu or cuda (Ray gives each worker "
                             "its own GPUs, so no cuda:N)")
        if self.num_gpus > 0:
            if self.device == "cpu":
                raise ValueError(f"device=cpu with num_gpus={self.num_gpus:g}: the workers would hold GPUs they do "
                                 "not use; leave num_gpus= out")
            return "cuda"
        if self.device == "cuda":
            raise ValueError("device=cuda with engine=ray: give each worker a GPU, e.g. num_gpus=1")
        return "cpu"

    def settings(self) -> dict[str, str]:
        """Every option that changes the vectors; a stored name keeps one set of these. Unchanged
        since parts first carried their hash, so every existing part keeps matching: what moved
        is where `precision=auto` is decided (the workers' device kind, not the driver's)."""
        settings = {"backbone": self.backbone, "layers": self.layers or "default",
                    "max_seconds": f"{self.max_seconds:g}", "chunking": self.chunking,
                    "precision": self.precision}
        if self.revision:  # only when there is one, so names made before revisions keep their hash
            settings["revision"] = self.revision
        return {**settings, **self.backbone_settings}  # empty, so unchanged, for most backbones

    def settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:16]

    def shard_settings(self) -> ShardSettings:
        return ShardSettings(
            root=str(paths.root()), dataset=self.dataset, name=self.name, backbone=self.backbone,
            layers=self.layers, max_seconds=self.max_seconds, chunking=self.chunking, precision=self.precision,
            device=self.device, batch_size=self.batch_size, loader_workers=self.loader_workers, strict=self.strict,
            trust_remote_code=self.trust_remote_code, revision=self.revision,
            settings=json.dumps(self.settings(), sort_keys=True), settings_hash=self.settings_hash())


def whole_number(key: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not value >= minimum:
        raise ValueError(f"{key}={value}: must be a whole number, {minimum} or more")


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
    model_seconds: float = 0.0   # summed over the workers
    audio_seconds: float = 0.0
    workers: int = 1             # models that worked side by side (processes or Ray actors)
    report: str | None = None

    def add(self, shard: ShardResult) -> None:
        self.embedded += shard.embedded
        self.failures.extend(shard.failures)
        self.unread.extend(shard.unread)
        self.model_seconds += shard.model_seconds
        self.audio_seconds += shard.audio_seconds
        if shard.part:
            self.parts.append(shard.part)


@dataclass
class Plan:
    tasks: list[ShardTask]           # by shard: clips with neither a vector nor a recorded failure
    done: int                        # current clips that have one of the two
    failed: list[dict[str, str]]     # the recorded failures among them

    @property
    def clips(self) -> int:
        return sum(len(task.clips) for task in self.tasks)


def dataset_clips(dataset: str) -> dict[str, list[Clip]]:
    """The dataset's clips by shard, in shard order, read from its `tracks` parts (no DuckDB
    catalog: opening one and its views cost a small job ~45 ms)."""
    columns = ["track_id", "sha256", "shard", "offset", "nbytes", "duration_s"]
    tables = [pq.ParquetFile(part).read(columns=columns) for part in table_parts("tracks", dataset=dataset)]
    by_shard: dict[str, list[Clip]] = defaultdict(list)
    for table in tables:
        for row in zip(*(table.column(c).to_pylist() for c in columns)):
            by_shard[row[2]].append(Clip(*row))
    return {shard: sorted(clips, key=lambda c: c.offset) for shard, clips in sorted(by_shard.items())}


def check_settings(settings: ShardSettings) -> None:
    """Early refusal, before a model is loaded; `shard.claim_name` is the check that decides."""
    refuse_other_settings(settings, store.read_backbone(settings.name))


def job_lock_path(dataset: str, name: str) -> Path:
    return paths.table_dir("embeddings") / f".{dataset}.{name}.lock"  # names hold no '.': unambiguous


@contextmanager
def job_lock(cfg: EmbedConfig) -> Iterator[None]:
    """One job per (dataset, name) at a time, refused at once rather than queued: a second job
    would only redo the first one's clips, or mix other settings into its parts. Worker
    processes and Ray actors work under the lock of the process that planned their shards."""
    stack = ExitStack()
    try:
        stack.enter_context(locks.file_lock(job_lock_path(cfg.dataset, cfg.name), wait=False,
                                            holder=f"embed dataset={cfg.dataset} name={cfg.name}"))
    except locks.Busy as busy:
        raise EmbedRefused(f"another embed of {cfg.dataset} · {cfg.name} is running ({busy}); wait for it") from None
    with stack:
        yield


def plan(cfg: EmbedConfig, clips: dict[str, list[Clip]]) -> Plan:
    """What is left to embed under this name, one task per shard; a part made with other
    settings stops the job. Parts holding vectors of clips the dataset no longer has are pruned."""
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
        if pairs - current:  # only a part that holds stale rows is read in full and rewritten
            store.drop_stale(part, current)
            pairs &= current
        done |= pairs
        # Failures without the clip kind come from lakes that also recorded unreadable shards: retried.
        failed.update({(f["track_id"], f["sha256"]): f for f in contents.failures
                       if f.get("kind") == CLIP_FAILURE and (f["track_id"], f["sha256"]) in current})
    done |= set(failed)
    tasks = []
    for shard, shard_clips in sorted(clips.items()):
        todo = tuple(c for c in shard_clips if (c.track_id, c.sha256) not in done)
        if todo:
            tasks.append(ShardTask(shard=shard, part=str(store.part_path(cfg.dataset, cfg.name, shard)), clips=todo,
                                   order=tuple(c.track_id for c in shard_clips)))
    return Plan(tasks, len(done & current), list(failed.values()))


def refuse_if_strict(cfg: EmbedConfig, work: Plan) -> None:
    """strict=true: a clip without a vector fails the job, also when an earlier run recorded it."""
    if cfg.strict and work.failed:
        first = work.failed[0]
        raise EmbedRefused(f"strict=true: {first['track_id']}: {first['reason']} (recorded by an earlier run, "
                           f"with {len(work.failed) - 1} more; force=true tries them again)")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("[red]{task.fields[bad]}"),
                    TimeElapsedColumn(), console=console)


def run(cfg: EmbedConfig, console: Console | None = None) -> EmbedResult:
    """Plans under the job lock, then has the engine embed every pending shard."""
    console = console or make_console(stderr=True)
    started = time.perf_counter()
    clips = dataset_clips(cfg.dataset)
    if not clips:
        raise EmbedRefused(f"dataset {cfg.dataset!r} has no tracks: ingest it first "
                           f"(just ingest dataset={cfg.dataset} source=folder path=DIR)")
    settings = cfg.shard_settings()
    with job_lock(cfg):
        check_settings(settings)
        if cfg.force:
            for part in store.list_parts(cfg.dataset, cfg.name):
                part.unlink()
        work = plan(cfg, clips)
        refuse_if_strict(cfg, work)
        result = EmbedResult(cfg.dataset, cfg.name, "unchanged", already=work.done, already_failed=len(work.failed))
        if not work.tasks:
            if store.read_backbone(cfg.name) is None:
                # Every vector is there but the provenance row is not (set aside as damaged): the
                # views need its width and the heads its settings, so the model states them again.
                claim_name(settings, load_model(settings))
            result.seconds = time.perf_counter() - started
            return result
        result.load_seconds = time.perf_counter() - started
        embed_shards(cfg, settings, work, result, console, started)
    result.status = "incomplete" if result.unread else "written"
    result.seconds = time.perf_counter() - started
    return result


def embed_shards(cfg: EmbedConfig, settings: ShardSettings, work: Plan, result: EmbedResult, console: Console,
                 started: float) -> None:
    """Every task through `embed_shard`, here, in local worker processes or on Ray; the driver
    only counts and shows progress."""
    loads: list[float] = []
    with _progress(console) as progress:
        bar = progress.add_task(f"embed {cfg.dataset} · {cfg.name}", total=work.clips, rate="", bad="")

        def show(advance: int) -> None:
            elapsed = time.perf_counter() - started
            trouble = [f"{len(result.failures)} failed" if result.failures else "",
                       f"{len(result.unread)} unread" if result.unread else ""]
            progress.update(bar, advance=advance,
                            rate=f"{result.embedded / elapsed:.1f} clips/s · {result.audio_seconds / elapsed:.0f} audio-s/s",
                            bad=" · ".join(t for t in trouble if t))

        def done(shard: ShardResult, advance: int) -> None:
            result.add(shard)
            loads.append(shard.load_seconds)
            show(advance)

        parallel = cfg.engine == "ray" or (cfg.workers > 1 and len(work.tasks) > 1)
        result.workers = min(cfg.workers, len(work.tasks)) if parallel else 1
        if cfg.engine == "ray":
            from embed.ray_engine import run_on_ray

            run_on_ray(cfg, settings, work.tasks, lambda shard, task: done(shard, len(task.clips)))
        elif parallel:
            from embed.workers import run_in_processes

            run_in_processes(settings, work.tasks, cfg.workers, lambda shard, task: done(shard, len(task.clips)))
        else:
            worker = ShardWorker(settings)
            for task in work.tasks:  # progress by batch: one shard can be most of a small job
                done(worker.embed(task, progress=show), 0)
    # Workers load their models side by side: the job waited for the slowest one.
    result.load_seconds += max(loads, default=0.0)


def write_report(cfg: EmbedConfig) -> str:
    """All failures recorded in this dataset's parts for the name, in one file a person can read."""
    failures = []
    for part in store.list_parts(cfg.dataset, cfg.name):
        failures.extend(store.part_contents(part).failures)
    target = paths.reports_dir(cfg.dataset) / f"embed-{cfg.name}.json"
    atomic.write_json({"dataset": cfg.dataset, "backbone": cfg.name, "settings": cfg.settings(),
                       "failures": failures}, target)
    return str(target)


def finish(cfg: EmbedConfig, result: EmbedResult) -> EmbedResult:
    """After the work: the failure report, and the catalog's views over the new parts."""
    result.report = write_report(cfg)
    catalog.refresh()
    return result
