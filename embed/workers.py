"""`workers=N` on one machine: N processes, each a `ShardWorker` with its own model, taking the
job's shards one at a time as they finish the last, so a slow shard does not hold up a
fixed share of the others. The machine's cores are split between them (torch threads).

The processes are spawned, not forked: a fork of a process holding torch's thread pool and
a DuckDB connection is not safe. They inherit nothing but the settings and their tasks.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from embed.shard import EmbedRefused, ShardResult, ShardSettings, ShardTask, ShardWorker

_worker: ShardWorker | None = None  # this process's model, when it is one of the pool's


def _start(settings: ShardSettings, threads: int) -> None:
    global _worker
    _worker = ShardWorker(settings, threads=threads, own_process=True)


def _embed(task: ShardTask) -> ShardResult:
    return _worker.embed(task)


def run_in_processes(settings: ShardSettings, tasks: list[ShardTask], workers: int,
                     done: Callable[[ShardResult, ShardTask], None]) -> None:
    """Runs every task; the first failure (a refusal, strict=true, a worker that died) stops
    the job after the shards already running, whose parts stand."""
    count = min(workers, len(tasks))
    threads = max(1, (os.cpu_count() or 1) // count)
    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(settings, threads))
    try:
        running = {pool.submit(_embed, task): task for task in tasks}
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise EmbedRefused(f"a worker process died while embedding {task.shard} (killed, or out of "
                                       "memory?); the shards it did not finish are embedded by the next run") from None
                done(result, task)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
