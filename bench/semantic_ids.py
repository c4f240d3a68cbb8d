"""head=semantic_ids end to end from the lake: read the vectors, fit 3-level residual k-means,
assign every row, write the codes (run folder and `semantic_ids` table). Target: under 3 minutes
for 1M × 512 on the 2-core machine, with peak memory reported against the matrix's size (the
train step runs in a child process, so its peak RSS is its own, not the setup's).

Data: `rows` synthetic float32 vectors around `clusters` Gaussian centres, written into a
scratch lake (AUDIOLAKE_ROOT=`root`, default a temporary folder) as `parts` embedding parts
in track-id order, with tracks and a split (all train but `val` rows). Then
`heads.train.train("semantic_ids", ...)` is timed. Assignment throughput: FAISS's flat L2
search (what encode uses) against a plain numpy argmin of ‖x‖² − 2x·c + ‖c‖² on the same
`assign_rows` rows and 256 centroids, checked to agree. CPU seconds are printed beside the wall
time: on a shared machine the wall time is mostly waiting for a core.

    python bench/semantic_ids.py [rows=1000000] [dim=512] [codes=256,256,256] [clusters=2000] [parts=10]
    python bench/semantic_ids.py phase=assign [assign_rows=100000]    # the throughput comparison alone
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import parse_config, run_main, split_args  # noqa: E402


@dataclass
class BenchConfig:
    rows: int = 1_000_000
    dim: int = 512
    codes: str = "256,256,256"
    clusters: int = 2000
    parts: int = 10
    val: int = 10_000
    assign_rows: int = 100_000
    points_per_code: int = 256   # the head's defaults; points_per_code=0 train_points=262144 is the old sample
    train_points: int = 262144
    root: str = ""
    phase: str = "all"       # all | train (the child) | assign (the throughput comparison alone)


def setup(cfg: BenchConfig) -> None:
    from heads.testing import write_embeddings, write_split, write_tracks
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((cfg.clusters, cfg.dim)).astype(np.float32) * 2
    ids = [f"t{i:08d}" for i in range(cfg.rows)]
    write_tracks("bench", [{"track_id": t} for t in ids])
    write_split("bench", "default", {t: ("val" if i < cfg.val else "train") for i, t in enumerate(ids)})
    edges = np.linspace(0, cfg.rows, cfg.parts + 1).astype(int)
    for p, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        block = centres[rng.integers(cfg.clusters, size=b - a)] + rng.standard_normal((b - a, cfg.dim), np.float32)
        write_embeddings("bench", "synthetic", ids[a:b], {"last": block}, shard=f"shards/bench/b0/bench-{p:06d}.tar")


def train_child(cfg: BenchConfig) -> None:
    from heads.train import train
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    run = train("semantic_ids", dataset="bench", backbone="synthetic", codes=cfg.codes,
                points_per_code=cfg.points_per_code, train_points=cfg.train_points)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    peak = usage.ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_bytes": peak,
                      "val": run.metrics["val"]["recon_error_per_level"],
                      "collisions": run.metrics["all"]["collisions"]}))


def assignment(cfg: BenchConfig) -> dict[str, float]:
    import faiss
    from heads.rq_kmeans import assign
    faiss.omp_set_num_threads(1)  # as encode runs it (threads=1)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((cfg.assign_rows, cfg.dim), np.float32)
    C = rng.standard_normal((256, cfg.dim), np.float32)
    start, cpu = time.perf_counter(), time.process_time()
    ours = assign(X, C)
    faiss_s, faiss_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    plain = np.empty(len(X), np.int64)
    c2 = (C * C).sum(1)
    for a in range(0, len(X), 16384):  # chunks keep the distance matrix small
        plain[a:a + 16384] = np.argmin(c2 - 2 * X[a:a + 16384] @ C.T, axis=1)
    numpy_s, numpy_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"faiss_rows_per_s": len(X) / faiss_s, "numpy_rows_per_s": len(X) / numpy_s,
            "faiss_rows_per_cpu_s": len(X) / faiss_cpu, "numpy_rows_per_cpu_s": len(X) / numpy_cpu,
            "agree": float(np.mean(ours == plain))}


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    if cfg.phase == "train":
        train_child(cfg)
        return 0
    if cfg.phase == "assign":
        report_assignment(cfg)
        return 0
    root = cfg.root or tempfile.mkdtemp(prefix="bench-semantic-ids-")
    os.environ["AUDIOLAKE_ROOT"] = root
    start = time.perf_counter()
    setup(cfg)
    print(f"setup: {cfg.rows:,} x {cfg.dim} vectors written to {root} in {time.perf_counter() - start:.1f} s", flush=True)
    child = subprocess.run([sys.executable, __file__, "phase=train", *argv], capture_output=True, text=True,
                           env={**os.environ, "AUDIOLAKE_ROOT": root})
    if child.returncode:
        print(child.stderr)
        return child.returncode
    result = json.loads(child.stdout.strip().splitlines()[-1])
    matrix = cfg.rows * cfg.dim * 4
    print(f"semantic_ids codes={cfg.codes}: {result['seconds']:.1f} s end to end (read, fit, assign, write), "
          f"{result['cpu_seconds']:.1f} s of CPU (what the wall time approaches with a core to itself); "
          f"peak RSS {result['peak_bytes'] / 2**30:.2f} GiB = {result['peak_bytes'] / matrix:.2f}x the "
          f"{matrix / 2**30:.2f} GiB matrix")
    print(f"val reconstruction error per level: {', '.join(f'{e:.3f}' for e in result['val'])}; "
          f"collisions: {result['collisions']}")
    report_assignment(cfg)
    return 0


def report_assignment(cfg: BenchConfig) -> None:
    speed = assignment(cfg)
    print(f"assignment to 256 centroids: FAISS {speed['faiss_rows_per_s']:,.0f} rows/s, numpy argmin "
          f"{speed['numpy_rows_per_s']:,.0f} rows/s ({speed['faiss_rows_per_s'] / speed['numpy_rows_per_s']:.2f}x), "
          f"agreement {speed['agree']:.4f}; per CPU second: FAISS {speed['faiss_rows_per_cpu_s']:,.0f}, numpy "
          f"{speed['numpy_rows_per_cpu_s']:,.0f} rows")


if __name__ == "__main__":
    run_main(main)
