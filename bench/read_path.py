"""Reading an embedding matrix back into numpy: every route we have, against `np.load` of a .npy.

The .npy load is the floor (one read of the bytes into an array). Parquet's list encoding
makes general readers decode one repetition level per float; `lake.vectors.read_matrix`
walks the pages itself and skips them. Target: read_matrix within 2x of the .npy load.
All files are read warm (best of `repeats`), so this measures decoding, not the disk.

    python bench/read_path.py [rows=200000] [dim=768] [repeats=3] [npz=true]
"""
from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import parse_config, run_main, split_args  # noqa: E402
from lake.vectors import READ_PATHS, read_matrix, vector_field, write_vector_parquet  # noqa: E402


@dataclass
class BenchConfig:
    rows: int = 200000
    dim: int = 768
    repeats: int = 3
    npz: bool = True  # the compressed .npz write is slow (zlib over the whole matrix)


def best_of(fn: Callable[[], np.ndarray], repeats: int, want: np.ndarray) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        got = fn()
        best = min(best, time.perf_counter() - started)
        if got.shape != want.shape or got.dtype != np.float32 or not np.array_equal(got, want):
            raise AssertionError(f"{fn.__name__}: wrong matrix {got.shape} {got.dtype}")
        del got
    return best


def list_to_numpy(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    arr = column.combine_chunks()
    return arr.flatten().to_numpy().reshape(len(arr), dim)


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    work = Path(tempfile.mkdtemp(prefix="audiolake-bench-read-"))
    try:
        m = np.random.default_rng(0).standard_normal((cfg.rows, cfg.dim), dtype=np.float32)
        mb = m.nbytes / 2**20
        npy, npz, parquet, db = (work / n for n in ("m.npy", "m.npz", "m.parquet", "m.duckdb"))
        np.save(npy, m)
        if cfg.npz:
            np.savez_compressed(npz, emb=m)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), cfg.dim)
        write_vector_parquet(pa.table([emb], schema=pa.schema([vector_field(cfg.dim)])), parquet)
        with duckdb.connect(str(db)) as con:
            con.execute(f"CREATE TABLE t AS SELECT CAST(emb AS FLOAT[{cfg.dim}]) AS emb "
                        f"FROM read_parquet('{parquet}')")
        print(f"{cfg.rows} x {cfg.dim} float32 = {mb:.0f} MB; parquet {parquet.stat().st_size / 2**20:.0f} MB"
              + (f", npz {npz.stat().st_size / 2**20:.0f} MB" if cfg.npz else ""))

        def np_load_npy():
            return np.load(npy)

        def np_load_npz():
            with np.load(npz) as z:
                return z["emb"]

        def pyarrow_read_table():
            return list_to_numpy(pq.read_table(parquet, columns=["emb"]).column("emb"), cfg.dim)

        def duckdb_parquet():
            with duckdb.connect() as con:
                table = con.sql(f"SELECT emb FROM read_parquet('{parquet}')").to_arrow_table()
            return list_to_numpy(table.column("emb"), cfg.dim)

        def duckdb_native():
            with duckdb.connect(str(db), read_only=True) as con:
                table = con.sql("SELECT emb FROM t").to_arrow_table()
            return list_to_numpy(table.column("emb"), cfg.dim)

        def lake_read_matrix():
            return read_matrix(parquet)

        routes = [("np.load .npy", np_load_npy), ("np.load .npz (compressed)", np_load_npz),
                  ("pyarrow read_table", pyarrow_read_table), ("duckdb read_parquet", duckdb_parquet),
                  (f"duckdb FLOAT[{cfg.dim}] table", duckdb_native), ("lake read_matrix", lake_read_matrix)]
        if not cfg.npz:
            routes.pop(1)
        times = {}
        for name, fn in routes:
            times[name] = best_of(fn, cfg.repeats, m)
        base = times["np.load .npy"]
        print(f"{'':28}{'seconds':>9}{'MB/s':>9}{'vs npy':>9}")
        for name, secs in times.items():
            print(f"{name:28}{secs:9.3f}{mb / secs:9.0f}{secs / base:8.2f}x")
        READ_PATHS.clear()
        read_matrix(parquet)
        print(f"read_matrix column chunks: {dict(READ_PATHS)}")
        print(f"read_matrix / npy = {times['lake read_matrix'] / base:.2f}x (target <= 2x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
