"""The near-duplicate leakage check: FAISS (`lake.leakage.cross_split_pairs`) vs DuckDB brute force.

Random float32 vectors get a random 80/10/10 split assignment, and `planted` pairs of
near-duplicates (cosine about 0.995) are planted across splits, half of them inside the
first `duckdb_rows` rows. Both engines look for every pair in different splits with
cosine >= threshold: FAISS with the leakage check's own function (exact inner products of
L2-normalised vectors, only cross-split blocks), DuckDB with a self-join on
`array_cosine_similarity` over FLOAT[dim] (the same cross-split condition).

DuckDB's join evaluates about 2e5 pairs/s on 2 cores, so the full 100k² join (1.7e9
cross-split pairs) would take hours: it runs on the first `duckdb_rows` rows and its time is
extrapolated by the number of cross-split pairs (quadratic in rows), and FAISS is also timed
on that same subsample, so one ratio is measured like for like. Target: FAISS not slower.
Both must find the same pairs on the subsample, and FAISS every planted pair on the full set.

    python bench/near_duplicates.py [rows=100000] [dim=768] [threshold=0.98] [planted=50] [duckdb_rows=4000]
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import UsageError, parse_config, run_main, split_args  # noqa: E402
from lake.leakage import cross_split_pairs  # noqa: E402
from lake.vectors import vector_type  # noqa: E402


@dataclass
class BenchConfig:
    rows: int = 100000
    dim: int = 768
    threshold: float = 0.98
    planted: int = 50
    duckdb_rows: int = 4000
    seed: int = 0


def make_data(cfg: BenchConfig) -> tuple[np.ndarray, np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(cfg.seed)
    matrix = rng.standard_normal((cfg.rows, cfg.dim), dtype=np.float32)
    codes = rng.choice(3, cfg.rows, p=[0.8, 0.1, 0.1])
    inside = cfg.planted // 2  # pairs inside the DuckDB subsample; the rest anywhere else
    rows_in = rng.choice(min(cfg.duckdb_rows, cfg.rows), 2 * inside, replace=False)
    rows_out = cfg.duckdb_rows + rng.choice(max(cfg.rows - cfg.duckdb_rows, 0), 2 * (cfg.planted - inside),
                                            replace=False)
    planted = set()
    for a, b in np.concatenate([rows_in, rows_out]).reshape(-1, 2):
        matrix[b] = matrix[a] + 0.1 * rng.standard_normal(cfg.dim, dtype=np.float32)  # cosine ~0.995
        codes[b] = (codes[a] + 1 + rng.integers(2)) % 3                                 # another split
        planted.add((int(min(a, b)), int(max(a, b))))
    return matrix, codes, planted


def cross_pairs(codes: np.ndarray) -> int:
    sizes = np.bincount(codes, minlength=3).astype(np.int64)
    return int(sizes[0] * sizes[1] + sizes[0] * sizes[2] + sizes[1] * sizes[2])


def run_faiss(matrix: np.ndarray, codes: np.ndarray, threshold: float) -> tuple[float, set[tuple[int, int]]]:
    started = time.perf_counter()
    normed = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)  # the leakage check normalises too
    i, j, _ = cross_split_pairs(normed, codes, threshold)
    return time.perf_counter() - started, set(zip(i.tolist(), j.tolist()))


def run_duckdb(matrix: np.ndarray, codes: np.ndarray, threshold: float) -> tuple[float, set[tuple[int, int]]]:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1))
    vectors = pa.table({"i": np.arange(len(matrix)), "split": codes,
                        "emb": pa.FixedSizeListArray.from_arrays(flat, type=vector_type(matrix.shape[1]))})
    con.register("vectors_arrow", vectors)
    # Loaded into DuckDB's own storage first (not timed), as the lake's data would be scanned.
    con.execute(f"CREATE TEMP TABLE v AS SELECT i, split, CAST(emb AS FLOAT[{int(matrix.shape[1])}]) AS emb "
                "FROM vectors_arrow")
    started = time.perf_counter()
    rows = con.execute(
        "SELECT a.i, b.i FROM v AS a JOIN v AS b "
        "ON a.split < b.split AND array_cosine_similarity(a.emb, b.emb) >= $threshold",
        {"threshold": threshold}).fetchall()
    seconds = time.perf_counter() - started
    con.close()
    return seconds, {(min(a, b), max(a, b)) for a, b in rows}


def main(argv: list[str]) -> int:
    pairs, words = split_args(argv)
    if words:
        raise UsageError(f"unexpected argument {words[0]!r}: arguments are key=value")
    cfg = parse_config(BenchConfig, pairs)
    if not 2 * cfg.planted <= min(cfg.duckdb_rows, cfg.rows - cfg.duckdb_rows) or cfg.duckdb_rows > cfg.rows:
        raise UsageError("need duckdb_rows <= rows and room for the planted pairs on both sides of duckdb_rows")
    matrix, codes, planted = make_data(cfg)
    sub = cfg.duckdb_rows
    print(f"{cfg.rows:,} × {cfg.dim} float32 vectors, split 80/10/10, {cfg.planted} planted cross-split "
          f"near-duplicates (cosine ≈ 0.995), threshold {cfg.threshold:g}")

    faiss_full_s, faiss_full = run_faiss(matrix, codes, cfg.threshold)
    faiss_sub_s, faiss_sub = run_faiss(matrix[:sub], codes[:sub], cfg.threshold)
    duck_sub_s, duck_sub = run_duckdb(matrix[:sub], codes[:sub], cfg.threshold)
    full_pairs, sub_pairs = cross_pairs(codes), cross_pairs(codes[:sub])
    scale = full_pairs / sub_pairs
    duck_full_s = duck_sub_s * scale

    print(f"{'':44}{'pairs':>10}{'seconds':>10}{'pairs/s':>10}")
    for name, n, secs in [
        (f"FAISS IndexFlatIP (lake.leakage), {cfg.rows:,}", full_pairs, faiss_full_s),
        (f"FAISS IndexFlatIP, first {sub:,} rows", sub_pairs, faiss_sub_s),
        (f"DuckDB array_cosine_similarity, {sub:,} rows", sub_pairs, duck_sub_s),
        (f"DuckDB, {cfg.rows:,} (extrapolated ×{scale:,.0f})", full_pairs, duck_full_s),
    ]:
        print(f"{name:44}{n:10.2e}{secs:10.2f}{n / secs:10.2e}")
    print(f"DuckDB / FAISS = {duck_full_s / faiss_full_s:.0f}x on {cfg.rows:,} rows (DuckDB extrapolated by "
          f"cross-split pair count, i.e. quadratically in rows), {duck_sub_s / faiss_sub_s:.0f}x measured on the "
          f"same {sub:,} rows  (target: FAISS not slower, i.e. >= 1x)")

    planted_sub = {p for p in planted if p[1] < sub}
    same = faiss_sub == duck_sub
    print(f"planted pairs found by FAISS on all rows: {len(planted & faiss_full)}/{len(planted)} "
          f"(+{len(faiss_full - planted)} others); on the first {sub:,} rows FAISS and DuckDB find "
          f"{'the same' if same else 'DIFFERENT'} {len(duck_sub)} pairs, {len(planted_sub & duck_sub)}/"
          f"{len(planted_sub)} of those planted there")
    ok = same and planted <= faiss_full and planted_sub <= duck_sub and duck_full_s >= faiss_full_s
    return 0 if ok else 1


if __name__ == "__main__":
    run_main(main)
