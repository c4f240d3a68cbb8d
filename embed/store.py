"""Where embeddings and backbone provenance live, and how parts are written and read back.

One Parquet part per (dataset, backbone, source shard), named after the shard's build and
file, so a resumed or parallel job only has to ask which parts exist. Inside a part the
rows are grouped by layer, one row group per layer, so reading one layer of a 13-layer
MERT job touches only its bytes.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import atomic, locks, paths
from lake.parts import table_parts
from lake.schemas import BACKBONES, embeddings_schema
from lake.vectors import write_vector_parquet

SHARD_KEY = "audiolake.embed.shard"
FAILURES_KEY = "audiolake.embed.failures"
SETTINGS_KEY = "audiolake.embed.settings"


def parts_dir(dataset: str, backbone: str) -> Path:
    return paths.partition_dir("embeddings", dataset=dataset, backbone=backbone)


def part_path(dataset: str, backbone: str, shard: str) -> Path:
    """`shards/demo/b2026…/demo-000003.tar` → `part-b2026…-demo-000003.parquet`."""
    shard_path = Path(shard)
    return parts_dir(dataset, backbone) / f"part-{shard_path.parent.name}-{shard_path.stem}.parquet"


def list_parts(dataset: str, backbone: str) -> list[Path]:
    """The readable parts; damaged or foreign files are skipped (and quarantined) by `lake.parts`."""
    return table_parts("embeddings", dataset=dataset, backbone=backbone)


def write_part(target: Path, dataset: str, backbone: str, dim: int,
               layers: dict[str, tuple[list[str], list[str], np.ndarray]],
               shard: str, failures: list[dict[str, str]], settings_hash: str) -> Path:
    """Writes one part atomically; `layers` maps layer → (track ids, sha256s, [n, dim] matrix)."""
    schema = embeddings_schema(dim)
    tables = []
    for layer, (ids, shas, matrix) in layers.items():
        flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
        count = len(ids)
        tables.append(pa.Table.from_arrays([
            pa.array([dataset] * count, pa.string()), pa.array([backbone] * count, pa.string()),
            pa.array(ids, pa.string()), pa.array(shas, pa.string()),
            pa.array([layer] * count, pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, type=schema.field("emb").type),
        ], schema=schema))
    metadata = {SHARD_KEY: shard, FAILURES_KEY: json.dumps(failures), SETTINGS_KEY: settings_hash}
    return write_vector_parquet(tables, target, metadata)


def part_contents(part: Path) -> tuple[set[tuple[str, str]], list[dict[str, str]], str]:
    """(track_id, sha256) pairs embedded in a part, its recorded failures, and its shard."""
    meta = atomic.read_parquet_metadata(part)
    keys = pq.read_table(part, columns=["track_id", "sha256"])
    pairs = set(zip(keys.column("track_id").to_pylist(), keys.column("sha256").to_pylist()))
    return pairs, json.loads(meta.get(FAILURES_KEY, "[]")), meta.get(SHARD_KEY, "")


def drop_stale(part: Path, keep: set[tuple[str, str]]) -> None:
    """Rewrites a part without the rows whose (track_id, sha256) the dataset no longer has."""
    table = pq.read_table(part)
    mask = [(t, s) in keep for t, s in zip(table.column("track_id").to_pylist(), table.column("sha256").to_pylist())]
    if all(mask):
        return
    if not any(mask):
        part.unlink()
        return
    kept = table.filter(pa.array(mask))
    by_layer = [kept.filter(pc.equal(kept.column("layer"), layer))
                for layer in dict.fromkeys(kept.column("layer").to_pylist())]
    ours = {k: v for k, v in atomic.read_parquet_metadata(part).items() if k.startswith("audiolake.")}
    write_vector_parquet(by_layer, part, ours)


# ---- the backbones table: one row per stored backbone name -------------------------------

def backbone_part(name: str) -> Path:
    return paths.partition_dir("backbones", backbone=name) / "part-000000.parquet"


def backbone_lock(name: str):
    """Parallel workers of one job check-or-write the same provenance row; one at a time."""
    return locks.file_lock(paths.table_dir("backbones") / f".{name}.lock")


def read_backbone(name: str) -> dict[str, Any] | None:
    part = backbone_part(name)
    if not part.is_file():
        return None
    (row,) = pq.read_table(part).to_pylist()
    return row


def write_backbone(row: dict[str, Any]) -> Path:
    row = {**row, "created_at": row.get("created_at") or datetime.now(timezone.utc)}
    table = pa.Table.from_pylist([row], schema=BACKBONES)
    return atomic.write_parquet(table, backbone_part(row["backbone"]))
