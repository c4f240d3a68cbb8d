"""Embeddings for notebooks and heads: track ids, labels and one float32 matrix.

    from lake.embeddings import load
    emb = load("demo", "musicnn-mtt")            # the backbone's only layer, or "last"
    emb.matrix.shape, emb.track_ids[:3], emb.labels[:3]

The matrix is read straight from the Parquet parts (`lake.vectors.read_matrix`: about as fast
as `np.load` of an .npy, where DuckDB's list decoding is ~10x slower), only the row groups of
the requested layer, into one preallocated array. Ids come from the same row groups, and the
label column is joined in DuckDB, so no per-row Python runs and nothing is copied twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake import catalog, paths
from lake.vectors import read_matrix, row_groups_where
from lake.errors import one_line


@dataclass
class Embeddings:
    dataset: str
    backbone: str
    layer: str
    track_ids: np.ndarray        # str, one per row of `matrix`
    matrix: np.ndarray           # float32 [n, dim]
    labels: np.ndarray | None    # the requested tracks column, aligned with track_ids


def parts(dataset: str, backbone: str) -> list[Path]:
    directory = paths.partition_dir("embeddings", dataset=dataset, backbone=backbone)
    return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


def stored_layers(files: list[Path]) -> list[str]:
    layers: dict[str, None] = {}
    for file in files:
        meta = pq.ParquetFile(file).metadata
        index = meta.schema.names.index("layer")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is not None and stats.has_min_max:
                layers[stats.min] = None
    return list(layers)


def choose_layer(layer: str | None, available: list[str], where: str) -> str:
    if layer is None:
        if len(available) == 1:
            return available[0]
        if "last" in available:
            return "last"
        raise ValueError(f"{where} has layers {', '.join(available)}: pass layer=")
    if layer not in available:
        raise ValueError(f"{where} has no layer {layer!r} (stored: {', '.join(available)})")
    return layer


def load(dataset: str, backbone: str, layer: str | None = None, label: str | None = "label") -> Embeddings:
    files = parts(dataset, backbone)
    where = f"embeddings of dataset={dataset} backbone={backbone}"
    if not files:
        raise FileNotFoundError(f"no {where}: run just embed dataset={dataset} backbone={backbone}")
    layer = choose_layer(layer, stored_layers(files), where)
    groups = [row_groups_where(file, "layer", layer) for file in files]
    ids = pa.concat_arrays([
        pq.ParquetFile(file).read_row_groups(g, columns=["track_id"]).column("track_id").combine_chunks()
        for file, g in zip(files, groups) if g
    ] or [pa.array([], pa.string())])
    matrix = read_matrix(files, row_groups=groups)
    labels = None
    if label is not None:
        con = catalog.connect()
        con.register("selected_ids", pa.table({"track_id": ids, "position": pa.array(np.arange(len(ids)))}))
        try:
            labels_table = con.sql(
                f'SELECT t."{label}" AS value FROM selected_ids s LEFT JOIN tracks t '
                "ON t.dataset = $dataset AND t.track_id = s.track_id ORDER BY s.position",
                params={"dataset": dataset}).to_arrow_table()
        except Exception as err:
            raise ValueError(f"label={label!r}: not a column of tracks ({one_line(err, 160)})") from None
        labels = labels_table.column("value").to_numpy(zero_copy_only=False)
    return Embeddings(dataset, backbone, layer, ids.to_numpy(zero_copy_only=False), matrix, labels)
