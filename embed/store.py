"""Writing embeddings parts for a job, and the backbone provenance table.

The part layout itself (paths, one row group per layer, the metadata keys) is
`lake.embedding_parts`; this module adds what a job needs on top: a retry's rows merged into
the part its shard already has, rows kept in the shard's order, stale rows pruned.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import atomic, locks, paths
from lake.embedding_parts import (FAILURES_KEY, SETTINGS_KEY, SHARD_KEY, LayerRows, PartContents, by_layer,
                                  layer_tables, list_parts, part_contents, part_path, parts_dir,
                                  write_layers)
from lake.parts import table_parts
from lake.schemas import BACKBONES

__all__ = ["FAILURES_KEY", "SETTINGS_KEY", "SHARD_KEY", "PartContents", "backbone_lock", "backbone_part",
           "drop_stale", "list_parts", "part_contents", "part_path", "parts_dir", "read_backbone", "write_backbone",
           "write_part"]


def write_part(target: Path, dataset: str, backbone: str, dim: int, layers: LayerRows,
               shard: str, failures: list[dict[str, str]], settings_hash: str,
               order: Sequence[str] = (), corpus: str = "") -> Path:
    """Writes one part atomically; `layers` maps layer → (track ids, sha256s, [n, dim] matrix).

    When the shard already has a part (a run that retries clips it could not read before), the
    part's rows and failures are kept beside the new ones, never overwritten: a retry must not
    lose the vectors of the run before it. Rows are ordered by `order` (the shard's track ids).
    """
    if target.is_file():
        layers, failures = merged_with(target, dim, layers, failures, settings_hash)
    if order:
        layers = {layer: in_order(entry, order) for layer, entry in layers.items()}
    return write_layers(layer_tables(dataset, backbone, dim, layers), target, shard, failures, settings_hash,
                        corpus)


def merged_with(part: Path, dim: int, layers: LayerRows,
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


def drop_stale(part: Path, keep: set[tuple[str, str]]) -> None:
    """Rewrites a part without the rows whose (track_id, sha256) the dataset no longer has."""
    table = pq.read_table(part)
    mask = [(t, s) in keep for t, s in zip(table.column("track_id").to_pylist(), table.column("sha256").to_pylist())]
    if all(mask):
        return
    if not any(mask):
        part.unlink()
        return
    contents = part_contents(part)
    write_layers(by_layer(table.filter(pa.array(mask))), part, contents.shard, contents.failures, contents.settings,
                 contents.corpus)


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
