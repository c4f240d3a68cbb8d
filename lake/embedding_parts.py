"""The layout of an `embeddings` part, in one place: the embed engine writes it, readers
(`lake.embeddings`, heads, validate) read it through here.

One Parquet file per (dataset, backbone name, source shard):
`tables/embeddings/dataset=D/backbone=B/part-<build>-<shard stem>.parquet`, named after the
shard's build and file so a resumed or parallel job (any engine) only has to ask which parts
exist. Inside it one row group per layer, each holding the shard's rows in the shard's order,
so reading one layer of a 13-layer model touches only its bytes. The file's key-value
metadata names the shard, the hash of the settings the vectors were made with, and the clips
of the shard that failed for good.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake import atomic, paths
from lake.parts import table_parts
from lake.schemas import embeddings_schema
from lake.vectors import row_groups_where, write_vector_parquet

SHARD_KEY = "audiolake.embed.shard"
FAILURES_KEY = "audiolake.embed.failures"
SETTINGS_KEY = "audiolake.embed.settings"
# Vectors learned from a table rather than from each clip's audio (item2vec: the playlists)
# carry that table's digest (lake.corpus), so a reader can tell when it has changed since.
CORPUS_KEY = "audiolake.embed.corpus"

# layer → (track ids, sha256s, [n, dim] float32 matrix), the rows of one layer of one part
LayerRows = dict[str, tuple[Sequence[str], Sequence[str], np.ndarray]]


def parts_dir(dataset: str, backbone: str) -> Path:
    return paths.partition_dir("embeddings", dataset=dataset, backbone=backbone)


def part_path(dataset: str, backbone: str, shard: str) -> Path:
    """`shards/demo/b2026…/demo-000003.tar` → `part-b2026…-demo-000003.parquet`."""
    shard_path = Path(shard)
    return parts_dir(dataset, backbone) / f"part-{shard_path.parent.name}-{shard_path.stem}.parquet"


def list_parts(dataset: str, backbone: str) -> list[Path]:
    """The readable parts; damaged or foreign files are skipped (and quarantined) by `lake.parts`."""
    return table_parts("embeddings", dataset=dataset, backbone=backbone)


def layer_tables(dataset: str, backbone: str, dim: int, layers: LayerRows) -> list[pa.Table]:
    """One table per layer, in the order given: each becomes its own row group(s)."""
    schema = embeddings_schema(dim)
    tables = []
    for layer, (ids, shas, matrix) in layers.items():
        flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
        count = len(ids)
        tables.append(pa.Table.from_arrays([
            pa.array([dataset] * count, pa.string()), pa.array([backbone] * count, pa.string()),
            pa.array(list(ids), pa.string()), pa.array(list(shas), pa.string()),
            pa.array([layer] * count, pa.string()),
            pa.FixedSizeListArray.from_arrays(flat, type=schema.field("emb").type),
        ], schema=schema))
    return tables


def write_layers(tables: list[pa.Table], target: Path, shard: str, failures: list[dict[str, str]],
                 settings_hash: str, corpus: str = "") -> Path:
    """Atomically writes a part from its per-layer tables and what its metadata records."""
    metadata = {SHARD_KEY: shard, FAILURES_KEY: json.dumps(failures), SETTINGS_KEY: settings_hash}
    if corpus:
        metadata[CORPUS_KEY] = corpus
    return write_vector_parquet(tables, target, metadata)


def by_layer(table: pa.Table) -> list[pa.Table]:
    """A part's rows split back into its per-layer tables, in the order the layers were written."""
    names = table.column("layer").to_pylist()
    return [table.filter(pa.array([n == layer for n in names])) for layer in dict.fromkeys(names)]


class PartContents(NamedTuple):
    pairs: set[tuple[str, str]]        # (track_id, sha256) of every row
    failures: list[dict[str, str]]     # clips of the shard recorded as failed
    shard: str
    settings: str                      # hash of the settings the vectors were made with
    corpus: str = ""                   # digest of the table they were learned from ("" for audio)


def part_metadata(part: Path) -> dict[str, str]:
    return atomic.read_parquet_metadata(part)


def part_contents(part: Path) -> PartContents:
    """What a part holds, from its ids, hashes and metadata: the vectors are not read."""
    meta = part_metadata(part)
    keys = pq.read_table(part, columns=["track_id", "sha256"])
    pairs = set(zip(keys.column("track_id").to_pylist(), keys.column("sha256").to_pylist()))
    return PartContents(pairs, json.loads(meta.get(FAILURES_KEY, "[]")), meta.get(SHARD_KEY, ""),
                        meta.get(SETTINGS_KEY, ""), meta.get(CORPUS_KEY, ""))


def stored_layers(files: list[Path]) -> list[str]:
    """The layers stored in `files`, from the row groups' statistics (one layer per row group)."""
    layers: dict[str, None] = {}
    for file in files:
        meta = pq.ParquetFile(file).metadata
        index = meta.schema.names.index("layer")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is not None and stats.has_min_max:
                layers[stats.min] = None
    return list(layers)


def layer_row_groups(file: Path, layer: str) -> list[int]:
    """The row groups of `file` that hold `layer`."""
    return row_groups_where(file, "layer", layer)
