"""`engine=ray`: the job's pending shards as calls on Ray actors, one shard per call.

Each actor is a `ShardWorker` with `num_cpus`/`num_gpus` of the cluster's resources: it loads
the model once and runs `embed_shard` for shard after shard, writing exactly the part the
local engine writes. Actors rather than tasks because a model is loaded once per worker, not
once per shard; plain calls rather than a Ray Data pipeline because the unit of work is a
whole shard whose part is written atomically by whoever embeds it: a pipeline would split
shards into rows and need a second step to put parts back together.

A worker that dies (killed, out of memory, its node lost) is restarted by Ray and its call
retried, up to `MAX_RETRIES` times; a shard's part is only ever written whole, and a retry
that finds it merges into it, so nothing is duplicated. This process keeps the job lock,
hands out shards as actors free up, and shows the progress.

The cluster must reach the lake at the path this process uses (a shared filesystem), and its
nodes need audiolake's dependencies (torch, transformers, ...); the job ships this process's
own `embed`, `lake` and `ingest` packages to its workers (a Ray `py_modules` runtime
environment), so they write what this code writes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from embed.shard import EmbedRefused, ShardResult, ShardSettings, ShardTask, ShardWorker
from lake import storage
from lake.errors import one_line

MAX_RETRIES = 3  # restarts of a dead actor, and retries of the shard it was embedding


def connect(address: str):
    """Ray, initialised, and whether this call started it: the session this process already has
    (whoever started it chose the code its workers run: see `this_code`), else the cluster at
    `address` or a new local instance, with this process's code shipped to the workers."""
    try:
        import ray
    except ImportError:
        raise EmbedRefused("engine=ray needs Ray: pip install 'audiolake[scale]' (or pip install ray)") from None
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, runtime_env=runtime_env())
    except Exception as err:  # a wrong address, a cluster that is down: one line, not Ray's traceback
        raise EmbedRefused(f"engine=ray: cannot start or reach Ray{f' at {address}' if address else ''}: "
                           f"{one_line(err)}") from None
    return ray, True


def runtime_env() -> dict:
    """This checkout's code, and where an s3:// lake's endpoint and region are (never credentials:
    the nodes bring their own, an instance role or their environment)."""
    env = {"py_modules": this_code()}
    if storage.endpoint_env():
        env["env_vars"] = storage.endpoint_env()
    return env


def this_code() -> list[str]:
    """The packages a worker runs, shipped from this process (Ray uploads them once per job):
    an installed audiolake elsewhere, or another checkout, must not write the parts."""
    import embed
    import ingest
    import lake

    return [str(Path(package.__file__).parent) for package in (embed, lake, ingest)]


def run_on_ray(cfg, settings: ShardSettings, tasks: list[ShardTask],
               done: Callable[[ShardResult, ShardTask], None]) -> None:
    ray, started_here = connect(cfg.ray_address)
    actors = []
    try:
        worker_class = ray.remote(ShardWorker).options(
            num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)
        threads = max(1, int(cfg.num_cpus))
        actors = [worker_class.remote(settings, threads, True) for _ in range(min(cfg.workers, len(tasks)))]
        queue, idle, running = list(tasks), list(actors), {}
        while queue or running:
            while idle and queue:
                actor, task = idle.pop(), queue.pop(0)
                running[actor.embed.remote(task)] = (actor, task)
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                actor, task = running.pop(ref)
                done(result_of(ray, ref, task), task)
                idle.append(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()


def result_of(ray, ref, task: ShardTask) -> ShardResult:
    """The call's result; the worker's own error as this process would have raised it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = err.cause if isinstance(err.cause, Exception) else RuntimeError(one_line(err))
        raise cause from None
    except ray.exceptions.RayActorError as err:
        raise EmbedRefused(f"the Ray worker embedding {task.shard} died {MAX_RETRIES + 1} times "
                           f"({one_line(err)}); the next run resumes at this shard") from None
