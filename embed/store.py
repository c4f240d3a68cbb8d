"""Where embeddings and backbone provenance live, and how parts are written and read back.

One Parquet part per (dataset, backbone, source shard), named after the shard's build and
file, so a resumed or parallel job only has to ask which parts exist. Inside a part the
rows are grouped by layer, one row group per layer, so reading one layer of a 13-layer
MERT job touches only its bytes. A part's metadata names its shard, the hash of the settings
its vectors were made with, and the clips of the shard that failed for good.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Sequence

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
               shard: str, failures: list[dict[str, str]], settings_hash: str,
               order: Sequence[str] = ()) -> Path:
    """Writes one part atomically; `layers` maps layer → (track ids, sha256s, [n, dim] matrix).

    When the shard already has a part (a run that retries clips it could not read before), the
    part's rows and failures are kept beside the new ones, never overwritten: a retry must not
    lose the vectors of the run before it. Rows are ordered by `order` (the shard's track ids).
    """
    if target.is_file():
        layers, failures = merged_with(target, dim, layers, failures, settings_hash)
    if order:
        layers = {layer: in_order(entry, order) for layer, entry in layers.items()}
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


def merged_with(part: Path, dim: int, layers: dict[str, tuple[list[str], list[str], np.ndarray]],
                failures: list[dict[str, str]], settings_hash: str):
    """The new rows and failures plus those of `part` for clips the new ones do not cover."""
    old = part_contents(part)
    table = pq.read_table(part)
    old_layers = set(table.column("layer").to_pylist())
    if (old.settings != settings_hash or table.schema.field("emb").type.list_size != dim
            or (table.num_rows and old_layers != set(layers))):
        raise ValueError(f"{part}: holds vectors made with other settings or layers, so it cannot take these "
                         "(force=true recomputes the name's vectors)")
    covered = {tid for ids, _, _ in layers.values() for tid in ids} | {f["track_id"] for f in failures}
    merged = {}
    for layer, (ids, shas, matrix) in layers.items():
        rows = table.filter(pc.equal(table.column("layer"), layer))
        keep = [tid not in covered for tid in rows.column("track_id").to_pylist()]
        rows = rows.filter(pa.array(keep, pa.bool_()))
        kept = np.asarray(rows.column("emb").combine_chunks().flatten(), np.float32).reshape(-1, dim)
        merged[layer] = (rows.column("track_id").to_pylist() + list(ids), rows.column("sha256").to_pylist() + list(shas),
                         np.concatenate([kept, np.asarray(matrix, np.float32).reshape(-1, dim)]))
    return merged, [f for f in old.failures if f["track_id"] not in covered] + list(failures)


def in_order(entry: tuple[list[str], list[str], np.ndarray], order: Sequence[str]):
    """One layer's rows sorted by position in `order`; ids not in it keep their place at the end."""
    ids, shas, matrix = entry
    position = {tid: i for i, tid in enumerate(order)}
    index = sorted(range(len(ids)), key=lambda i: (position.get(ids[i], len(position)), i))
    return [ids[i] for i in index], [shas[i] for i in index], np.asarray(matrix)[index]


class PartContents(NamedTuple):
    pairs: set[tuple[str, str]]        # (track_id, sha256) of every row
    failures: list[dict[str, str]]     # clips of the shard recorded as failed
    shard: str
    settings: str                      # hash of the settings the vectors were made with


def part_contents(part: Path) -> PartContents:
    """What a part holds, from its ids, hashes and metadata: the vectors are not read."""
    meta = atomic.read_parquet_metadata(part)
    keys = pq.read_table(part, columns=["track_id", "sha256"])
    pairs = set(zip(keys.column("track_id").to_pylist(), keys.column("sha256").to_pylist()))
    return PartContents(pairs, json.loads(meta.get(FAILURES_KEY, "[]")), meta.get(SHARD_KEY, ""),
                        meta.get(SETTINGS_KEY, ""))


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
    if part not in table_parts("backbones", backbone=name):  # a damaged row is set aside, not fatal
        return None
    (row,) = pq.read_table(part).to_pylist()
    return row


def write_backbone(row: dict[str, Any]) -> Path:
    row = {**row, "created_at": row.get("created_at") or datetime.now(timezone.utc)}
    table = pa.Table.from_pylist([row], schema=BACKBONES)
    return atomic.write_parquet(table, backbone_part(row["backbone"]))
