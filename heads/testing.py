"""Small lakes written by hand, for the heads' tests and notebooks: tracks, a split, vectors.

No audio and no backbone: rows go straight into the same tables (through the same writers)
that ingest, split and embed produce, so a test controls exactly which vectors carry signal.

    write_tracks("toy", [{"track_id": "a", "label": "x"}, ...])
    write_split("toy", "default", {"a": "train", ...})
    write_embeddings("toy", "fake", ids, {"last": matrix})
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embed import store
from lake import atomic, paths
from lake.schemas import SPLITS, tracks_table


def write_tracks(dataset: str, rows: list[dict[str, Any]]) -> Path:
    table = tracks_table([{"dataset": dataset, **row} for row in rows])
    return atomic.write_parquet(table, paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet")


def write_split(dataset: str, name: str, assignment: dict[str, str]) -> Path:
    rows = [{"dataset": dataset, "split_name": name, "track_id": t, "split": s} for t, s in assignment.items()]
    target = paths.partition_dir("splits", dataset=dataset, split_name=name) / "part-000000.parquet"
    return atomic.write_parquet(pa.Table.from_pylist(rows, schema=SPLITS), target)


def write_embeddings(dataset: str, backbone: str, track_ids: list[str], layers: dict[str, np.ndarray],
                     shard: str = "shards/hand/b0/hand-000000.tar") -> Path:
    """One part holding every layer (one row group each), as the embed engine writes them."""
    dim = next(iter(layers.values())).shape[1]
    target = store.part_path(dataset, backbone, shard)
    shas = ["0" * 64] * len(track_ids)
    return store.write_part(target, dataset, backbone, dim,
                            {name: (list(track_ids), shas, m) for name, m in layers.items()}, shard, [], "hand")


def clusters(n: int, dim: int, classes: int, separation: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters: one centre per class (spread `separation`), unit noise; labels 0..classes-1."""
    rng = np.random.default_rng(seed)
    centres = separation * np.random.default_rng(1000 + classes).standard_normal((classes, dim))
    y = np.arange(n) % classes
    rng.shuffle(y)
    return (centres[y] + rng.standard_normal((n, dim))).astype(np.float32), y


def ranks(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1 for the best score of each group, 2 for the next, ... (ties in row order)."""
    order = np.lexsort((np.arange(len(scores)), -scores, groups))
    ranked = np.empty(len(scores), np.int64)
    starts = np.r_[0, np.flatnonzero(groups[order][1:] != groups[order][:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    ranked[order] = np.arange(len(order)) - np.repeat(starts, sizes) + 1
    return ranked


def toy_lake(dataset: str = "toy", n: int = 120, classes: int = 3, dim: int = 8, seed: int = 0,
             ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, Any]:
    """tracks (label = class name; a score that the vectors' second column carries, in groups of
    6 consecutive tracks with their ranks), split `default`, and backbone `fake` whose vectors
    carry the label and the score."""
    X, y = clusters(n, dim, classes, separation=1.5, seed=seed)
    ids = [f"{dataset}_{i:05d}" for i in range(n)]
    names = [f"c{k}" for k in range(classes)]
    score = np.round(70 + 8 * X[:, 1] + np.random.default_rng(seed + 7).normal(0, 2, n), 2)
    groups = np.array([f"g{i // 6:04d}" for i in range(n)])
    rank = ranks(score, groups)
    write_tracks(dataset, [{"track_id": t, "label": names[k], "speaker_id": f"s{i % 7}", "score": float(score[i]),
                            "group_id": str(groups[i]), "rank": int(rank[i])}
                           for i, (t, k) in enumerate(zip(ids, y))])
    cut = np.cumsum([int(r * n) for r in ratios[:2]])
    parts = np.where(np.arange(n) < cut[0], "train", np.where(np.arange(n) < cut[1], "val", "test"))
    write_split(dataset, "default", dict(zip(ids, parts.tolist())))
    write_embeddings(dataset, "fake", ids, {"last": X})
    return {"ids": ids, "X": X, "y": y, "classes": names, "split": parts, "score": score, "group": groups,
            "rank": rank}
