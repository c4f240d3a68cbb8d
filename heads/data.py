"""The one loader every head reads through: a selection of the lake → aligned numpy arrays.

    sel = Selection(dataset="eatd", backbone=("clap",), target="affect_label", split="default")
    data = load(sel)
    X, y = data.arrays(data.layers[0], "train")

A selection is SQL. DuckDB picks (track_id, target, split) from `tracks` joined with the named
split in `splits`, narrowed by `where=` (a predicate on `tracks`) and/or `select=` (a named
query returning track ids). Vectors come from `lake.embeddings.load` (the fast Parquet reader)
and are put in the selection's row order with one `searchsorted` per backbone; several
backbones are joined on track_id and concatenated (seed 001's MuQ ⊕ CAM++ fusion). No Python
runs per row.

Every way a selection can be wrong is one line naming the key: unknown dataset, split or
target column, a `where=` DuckDB rejects, an empty selection, a class missing from train, a
backbone without vectors for some selected tracks (with `just embed ...` to fix it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from lake import catalog, paths, queries
from lake.embeddings import choose_layer, parts, stored_layers
from lake.embeddings import load as load_embeddings
from lake.errors import one_line

SPLIT_NAMES = ("train", "val", "test")
CACHE_BYTES = 1 << 30  # layer matrices kept in memory at once (layer=all with seeds= reuses them)
NOT_CATEGORIES = ("FLOAT", "DOUBLE", "DECIMAL", "[]", "STRUCT", "MAP")


class SelectionError(ValueError):
    """A selection that cannot be trained on; the message is one line naming the key."""


@dataclass
class Selection:
    """The keys every head config starts with (a head's `Config` subclasses this)."""
    dataset: str
    backbone: tuple[str, ...]    # one, or several fused: backbone=muq,campplus
    target: str                  # a tracks column
    split: str = "default"       # a split_name in `splits`
    layer: str = ""              # a stored layer name; empty: each backbone's default; all: every layer
    where: str = ""              # SQL predicate on tracks, e.g. where="speaker_id <> 't_3'"
    select: str = ""             # queries/NAME.sql returning track_id ($dataset is bound)

    def __post_init__(self) -> None:
        if isinstance(self.backbone, str):
            self.backbone = tuple(b.strip() for b in self.backbone.split(",") if b.strip())
        self.backbone = tuple(paths.check_name("backbone", b) for b in self.backbone)
        paths.check_name("dataset", self.dataset)
        if not self.backbone:
            raise ValueError("backbone= is empty: name one backbone, or several separated by commas")
        if len(set(self.backbone)) != len(self.backbone):
            raise ValueError(f"backbone={','.join(self.backbone)} names a backbone twice")
        if self.where.strip():
            queries.predicate(self.where)
        if self.layer == "all" and len(self.backbone) > 1:
            raise ValueError("layer=all probes the layers of one backbone; fused backbones take one layer")


@dataclass
class Data:
    selection: Selection
    track_ids: np.ndarray        # str, sorted; every other array is aligned with it
    split: np.ndarray            # str: train | val | test
    y: np.ndarray                # int64 codes into `classes`
    classes: list[str]
    layers: list[str]            # what to train on: one entry, or every stored layer (layer=all)
    layer_of: dict[str, dict[str, str]]  # entry of `layers` → backbone → stored layer name
    dims: dict[str, int]         # backbone → width of its block of columns
    dropped_null: int            # selected rows whose target was NULL
    fingerprint: str
    _cache: dict = field(default_factory=dict, repr=False)

    def features(self, layer: str) -> np.ndarray:
        """float32 [n, sum of dims]: the backbones' vectors of `layer`, in track_ids order."""
        if layer not in self._cache:
            if sum(m.nbytes for m in self._cache.values()) > CACHE_BYTES:
                self._cache.clear()  # layer=all × seeds on a big dataset: keep one layer at a time
            blocks = [_aligned(self.selection.dataset, b, self.layer_of[layer][b], self.track_ids)
                      for b in self.selection.backbone]
            self.dims = {b: block.shape[1] for b, block in zip(self.selection.backbone, blocks)}
            self._cache[layer] = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        return self._cache[layer]

    def arrays(self, layer: str, part: str) -> tuple[np.ndarray, np.ndarray]:
        mask = self.split == part
        return self.features(layer)[mask], self.y[mask]

    def counts(self) -> dict[str, dict[str, int]]:
        """split → class → rows, for reports."""
        return {part: {c: int(np.sum((self.split == part) & (self.y == i))) for i, c in enumerate(self.classes)}
                for part in SPLIT_NAMES if np.any(self.split == part)}


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {name: kind for name, kind, *_ in con.execute("DESCRIBE tracks").fetchall()}


def _check_names(con: duckdb.DuckDBPyConnection, sel: Selection) -> None:
    datasets = [d for (d,) in con.execute("SELECT DISTINCT dataset FROM tracks ORDER BY 1").fetchall()]
    if sel.dataset not in datasets:
        raise SelectionError(f"dataset={sel.dataset!r} is not in the lake (datasets: {', '.join(datasets) or 'none'})")
    columns = _columns(con)
    if sel.target not in columns:
        raise SelectionError(f"target={sel.target!r} is not a column of tracks (columns: {', '.join(columns)})")
    if any(kind in columns[sel.target] for kind in NOT_CATEGORIES):
        raise SelectionError(f"target={sel.target} is {columns[sel.target]}, not categories: a classifier needs a "
                             "text or integer column (bin a score into a new column first)")
    names = [n for (n,) in con.execute(
        "SELECT DISTINCT split_name FROM splits WHERE dataset = $d ORDER BY 1", {"d": sel.dataset}).fetchall()]
    if sel.split not in names:
        raise SelectionError(
            f"split={sel.split!r} does not exist for dataset {sel.dataset} (splits: {', '.join(names) or 'none'}); "
            f"make it with: just split dataset={sel.dataset} name={sel.split} stratify={sel.target}")


def _selected_ids(con: duckdb.DuckDBPyConnection, sel: Selection) -> pa.Table | None:
    if not sel.select:
        return None
    try:
        path = queries.resolve(sel.select)
        sql = path.read_text(encoding="utf-8")
        wanted = queries.parameters(sql)
        if set(wanted) - {"dataset"}:
            raise SelectionError(f"select={sel.select}: its parameters {wanted} can only be $dataset")
        ids = queries.run(con, sql, {"dataset": sel.dataset} if wanted else {})
    except FileNotFoundError as err:
        raise SelectionError(f"select={sel.select}: {err}") from None
    except duckdb.Error as err:
        raise SelectionError(f"select={sel.select}: {one_line(err)}") from None
    if "track_id" not in ids.column_names:
        raise SelectionError(f"select={sel.select}: the query must return a track_id column "
                             f"(it returns {', '.join(ids.column_names)})")
    return ids.select(["track_id"]).cast(pa.schema([("track_id", pa.string())]))


def select_rows(con: duckdb.DuckDBPyConnection, sel: Selection) -> pa.Table:
    """(track_id, target, split) of the selection, sorted by track_id; target cast to text."""
    _check_names(con, sel)
    ids = _selected_ids(con, sel)
    target = '"' + sel.target.replace('"', '""') + '"'  # checked against DESCRIBE above
    try:
        where = f"AND {queries.predicate(sel.where)}" if sel.where.strip() else ""
    except ValueError as err:
        raise SelectionError(str(err)) from None
    restrict = ""
    if ids is not None:
        con.register("selected_ids", ids)
        restrict = "AND track_id IN (SELECT track_id FROM selected_ids)"
    sql = f"""
        WITH selected AS (
            SELECT track_id, CAST({target} AS VARCHAR) AS target
            FROM tracks WHERE dataset = $dataset {where} {restrict}
        ),
        in_split AS (
            SELECT track_id, split FROM splits WHERE dataset = $dataset AND split_name = $split
        )
        SELECT s.track_id, s.target, p.split
        FROM selected s JOIN in_split p USING (track_id)
        ORDER BY s.track_id"""
    try:
        return con.sql(sql, params={"dataset": sel.dataset, "split": sel.split}).to_arrow_table()
    except duckdb.Error as err:
        key = f"where={sel.where!r}" if sel.where else "the selection"
        raise SelectionError(f"{key}: DuckDB says: {one_line(err)}") from None


def encode_target(values: np.ndarray, split: np.ndarray, target: str) -> tuple[np.ndarray, list[str]]:
    """Class codes (classes sorted by name); every class must occur in train."""
    classes, y = np.unique(values, return_inverse=True)
    in_train = np.unique(y[split == "train"])
    missing = [str(classes[i]) for i in range(len(classes)) if i not in in_train]
    if missing:
        where = ", ".join(f"{c} ({', '.join(sorted(set(split[values == c])))})" for c in missing[:5])
        raise SelectionError(f"target={target}: class(es) missing from train: {where}; a head cannot learn a class "
                             "it never sees: change the split or narrow the selection with where=")
    if len(classes) < 2:
        raise SelectionError(f"target={target}: only one class ({classes[0]}) in the selection; need two or more")
    return y.astype(np.int64), [str(c) for c in classes]


def _aligned(dataset: str, backbone: str, layer: str, track_ids: np.ndarray) -> np.ndarray:
    """Rows of the backbone's matrix for `track_ids`, in that order (vectorised join)."""
    emb = load_embeddings(dataset, backbone, layer, label=None)
    ids = emb.track_ids.astype(str)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    pos = np.searchsorted(ordered, track_ids)
    found = pos < len(ids)
    found[found] = ordered[pos[found]] == track_ids[found]
    if not found.all():
        missing = track_ids[~found]
        raise SelectionError(
            f"backbone={backbone} (layer {layer}) has no vectors for {len(missing)} of {len(track_ids)} selected "
            f"tracks (e.g. {', '.join(missing[:3])}): run just embed dataset={dataset} backbone={backbone}")
    return emb.matrix[order[pos]]


def resolve_layers(sel: Selection) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The layer entries to train on, and each one's stored layer per backbone."""
    stored = {}
    for backbone in sel.backbone:
        files = parts(sel.dataset, backbone)
        if not files:
            raise SelectionError(f"backbone={backbone}: no embeddings for dataset {sel.dataset}: "
                                 f"run just embed dataset={sel.dataset} backbone={backbone}")
        stored[backbone] = stored_layers(files)
    if sel.layer == "all":
        (backbone,) = sel.backbone
        return list(stored[backbone]), {layer: {backbone: layer} for layer in stored[backbone]}
    try:
        chosen = {b: choose_layer(sel.layer or None, stored[b], f"backbone={b}") for b in sel.backbone}
    except ValueError as err:
        raise SelectionError(str(err)) from None
    name = ",".join(dict.fromkeys(chosen.values()))
    return [name], {name: chosen}


def _footer_digest(path: Path) -> str:
    """sha256 of the Parquet footer: row-group offsets, sizes, column statistics (min/max of every
    column chunk, the vectors' included) and key-value metadata (shard, settings hash)."""
    with open(path, "rb") as handle:
        handle.seek(-8, 2)
        tail = handle.read(8)
        length = int.from_bytes(tail[:4], "little")
        handle.seek(-(8 + length), 2)
        return hashlib.sha256(handle.read(length)).hexdigest()


def fingerprint(sel: Selection, columns: list[np.ndarray], layer_of: dict[str, dict[str, str]]) -> str:
    """Same selected rows (id, split, target) and same embedding part files → same hash.

    Part files are identified by name, size and a hash of their footer, not of their bytes
    (GBs for a big backbone): a re-embedding that changes any vector changes the chunk
    statistics or sizes in the footer; a copy of the lake elsewhere keeps its fingerprint.
    """
    digest = hashlib.sha256(b"audiolake-data-v1\0")
    digest.update(json.dumps([sel.dataset, sel.split, sel.target, layer_of], sort_keys=True).encode())
    for column in columns:  # fixed-width unicode arrays: their bytes are the values, no per-row Python
        digest.update(f"\0{column.dtype.str}:{len(column)}\0".encode() + column.tobytes())
    for backbone in sel.backbone:
        for part in parts(sel.dataset, backbone):
            digest.update(f"\0{backbone}/{part.name}:{part.stat().st_size}:{_footer_digest(part)}".encode())
    return digest.hexdigest()


def load(sel: Selection, con: duckdb.DuckDBPyConnection | None = None) -> Data:
    """The selection's rows, class codes and (per layer, on demand) features. Targets are
    categories (text or integer columns); a numeric-target head (scorer) will add its own `y`."""
    con = con or catalog.connect()
    rows = select_rows(con, sel)
    if rows.num_rows == 0:
        extra = f" where={sel.where!r}" if sel.where else ""
        extra += f" select={sel.select}" if sel.select else ""
        raise SelectionError(f"the selection is empty: no tracks of dataset {sel.dataset} in split "
                             f"{sel.split!r}{extra}")
    target_null = rows.column("target").is_null().to_numpy(zero_copy_only=False)
    dropped = int(target_null.sum())
    if dropped == rows.num_rows:
        raise SelectionError(f"target={sel.target} is NULL for all {dropped} selected tracks")
    if dropped:
        rows = rows.filter(pa.array(~target_null))
    split = rows.column("split").to_numpy(zero_copy_only=False).astype(str)
    unknown = sorted(set(np.unique(split)) - set(SPLIT_NAMES))
    if unknown:
        raise SelectionError(f"split={sel.split!r} assigns {unknown[0]!r}: splits are train, val or test")
    for part in ("train", "val"):
        if not np.any(split == part):
            raise SelectionError(f"split={sel.split!r} has no {part} rows in the selection "
                                 f"({len(split)} rows: {', '.join(f'{p} {int(np.sum(split == p))}' for p in SPLIT_NAMES)})")
    values = rows.column("target").to_numpy(zero_copy_only=False).astype(str)
    y, classes = encode_target(values, split, sel.target)
    layers, layer_of = resolve_layers(sel)
    track_ids = rows.column("track_id").to_numpy(zero_copy_only=False).astype(str)
    repeated = track_ids[1:][track_ids[1:] == track_ids[:-1]]  # sorted: a repeat sits next to itself
    if len(repeated):
        raise SelectionError(f"split={sel.split!r} lists {len(repeated)} track(s) twice (e.g. {repeated[0]}): "
                             "remake it with just split")
    digest = fingerprint(sel, [track_ids, split, values], layer_of)
    data = Data(sel, track_ids, split, y, classes, layers, layer_of, {}, dropped, digest)
    data.features(layers[0])  # checks coverage now, not after the first layer has trained
    return data
