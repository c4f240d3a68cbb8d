"""Embeddings for notebooks and heads: track ids, labels and one float32 matrix.

    from lake.embeddings import load
    emb = load("demo", "musicnn-mtt")            # the backbone's only layer, or "last"
    emb.matrix.shape, emb.track_ids[:3], emb.labels[:3]

The matrix is read straight from the Parquet parts (`lake.vectors.read_matrix`: about as fast
as `np.load` of an .npy, where DuckDB's list decoding is ~10x slower), only the row groups of
the requested layer, into one preallocated array. Ids come from the same row groups, and the
label column is joined in DuckDB, so no per-row Python runs and nothing is copied twice.

Every row is matched on (track_id, sha256) against the dataset's tracks, in Arrow: a vector
made from audio that has since changed is refused (`StaleVectors`, naming the `just embed` that
fixes it; `stale="skip"` leaves such rows out instead), and vectors of tracks no longer in the
dataset are left out. Where either side has no sha256 only the id is matched. Vectors learned
from a table instead of audio (item2vec: the playlists) are stale when that table has changed
since (lake.corpus): refused, or with `stale="skip"` all left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import catalog, corpus
from lake.embedding_parts import CORPUS_KEY, layer_row_groups, list_parts, part_metadata, stored_layers
from lake.errors import one_line
from lake.parts import table_parts
from lake.vectors import read_matrix

__all__ = ["Embeddings", "StaleVectors", "choose_layer", "learned_from", "load", "parts", "stored_layers"]


class StaleVectors(ValueError):
    """Vectors made from audio that has since changed; the message names the fix."""


@dataclass
class Embeddings:
    dataset: str
    backbone: str
    layer: str
    track_ids: np.ndarray        # str, one per row of `matrix`
    matrix: np.ndarray           # float32 [n, dim]
    labels: np.ndarray | None    # the requested tracks column, aligned with track_ids


def parts(dataset: str, backbone: str) -> list[Path]:
    return list_parts(dataset, backbone)


def current_audio(dataset: str) -> pa.Table:
    """track_id and sha256 of every track the dataset has now."""
    schema = pa.schema([("track_id", pa.string()), ("sha256", pa.string())])
    tables = [pq.ParquetFile(f).read(columns=schema.names).cast(schema) for f in table_parts("tracks", dataset=dataset)]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def match_audio(ids: pa.Array, shas: pa.Array, audio: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(current, stale) masks over the rows: current rows have a track with their id and hash
    (or no hash on either side); stale rows have a track whose audio hash is another."""
    position = pc.index_in(ids, value_set=audio.column("track_id").combine_chunks())
    now = pc.take(audio.column("sha256").combine_chunks(), position)
    known = pc.is_valid(position)
    stale = pc.and_(known, pc.fill_null(pc.not_equal(shas, now), False))
    return (pc.and_(known, pc.invert(stale)).to_numpy(zero_copy_only=False),
            stale.to_numpy(zero_copy_only=False))


def recorded_corpus(files: list[Path]) -> set[str]:
    """The digests of the tables the parts' vectors were learned from (empty: made from audio).
    A name holds one kind of vectors, so the first part tells: an audio backbone's thousands of
    parts cost one footer read here, not one each."""
    if not files or CORPUS_KEY not in part_metadata(files[0]):
        return set()
    return {part_metadata(f).get(CORPUS_KEY, "") for f in files} - {""}


def learned_from(dataset: str, backbone: str) -> str:
    """The table a backbone's vectors were learned from (e.g. "playlists"), "" for audio."""
    recorded = recorded_corpus(parts(dataset, backbone))
    return next(iter(recorded)).partition(":")[0] if recorded else ""


def corpus_changed(dataset: str, files: list[Path]) -> str:
    """The table (e.g. "playlists") the parts' vectors were learned from when it has changed
    since; "" when it has not, or when they were made from audio."""
    recorded = recorded_corpus(files)
    if not recorded:
        return ""
    now = corpus.current_digest(dataset)
    return "" if recorded == {now} else next(iter(recorded)).partition(":")[0]


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


def load(dataset: str, backbone: str, layer: str | None = None, label: str | None = "label",
         stale: Literal["refuse", "skip"] = "refuse") -> Embeddings:
    files = parts(dataset, backbone)
    where = f"embeddings of dataset={dataset} backbone={backbone}"
    fix = f"just embed dataset={dataset} backbone={backbone}"
    if not files:
        raise FileNotFoundError(f"no {where}: run {fix}")
    layer = choose_layer(layer, stored_layers(files), where)
    groups = [layer_row_groups(file, layer) for file in files]
    keys = pa.schema([("track_id", pa.string()), ("sha256", pa.string())])
    stored = pa.concat_tables([
        pq.ParquetFile(file).read_row_groups(g, columns=keys.names).cast(keys) for file, g in zip(files, groups) if g
    ] or [keys.empty_table()])
    ids, shas = stored.column("track_id").combine_chunks(), stored.column("sha256").combine_chunks()
    current, changed = match_audio(ids, shas, current_audio(dataset))
    learned_from = corpus_changed(dataset, files)
    if learned_from:
        if stale == "refuse":
            raise StaleVectors(f"the vectors of {backbone} were learned from the {learned_from} of {dataset}, "
                               f"which have changed since: run {fix}")
        current = np.zeros_like(current)
    if changed.any() and stale == "refuse":
        example = ids.filter(pa.array(changed))[0].as_py()
        raise StaleVectors(f"{int(changed.sum())} vectors of {backbone} were made from audio that has since "
                           f"changed (e.g. {example}): run {fix}")
    matrix = read_matrix(files, row_groups=groups)
    if not current.all():  # vectors of removed tracks (and, when skipped, of changed audio)
        ids, matrix = ids.filter(pa.array(current)), matrix[current]
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
