"""The one loader every head reads through: a selection of the lake → aligned numpy arrays.

    sel = Selection(dataset="eatd", backbone=("clap",), split="default")
    data = load(sel, Inputs(columns={"target": "affect_label"}, required=("target",)))
    X = data.features(data.layers[0])[data.part("train")]
    y = data.column("affect_label")[data.part("train")]

A selection is SQL. DuckDB picks (track_id, split, the asked-for columns) from `tracks` joined
with the named split in `splits`, narrowed by `where=` (a predicate on `tracks`) and/or
`select=` (a named query returning track ids). Vectors come from `lake.embeddings.load` (the
fast Parquet reader) and are put in the selection's row order with one `searchsorted` per
backbone; several backbones are joined on track_id and concatenated (seed 001's MuQ ⊕ CAM++
fusion). No Python runs per row.

Columns keep their types: text → object arrays of str (None for NULL), floats → float64 (NaN
for NULL), integers → int64 (float64 with NaN when some are NULL), lists (`terms`) → object
arrays of arrays. Turning them into targets (classes, ranks, scores) is the head's business.
Other tables arrive aligned with the same rows: `data.interactions()` gives each interaction's
position in `data.track_ids` (the pattern later loaders follow: playlists, glossary). Whatever a
head reads besides the selection goes through `data.cover(label, table)`, so the run's data
fingerprint names everything its numbers came from.

Every way a selection can be wrong is one line naming the key: unknown dataset, split or
column, a `where=` DuckDB rejects, an empty selection, a column NULL on every row, a backbone
without vectors for some selected tracks (with `just embed ...` to fix it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from heads.protocol import Inputs
from lake import arrow_bytes, catalog, paths, queries, splits, storage
from lake.embeddings import choose_layer, learned_from, parts, stored_layers
from lake.embeddings import load as load_embeddings
from lake.errors import one_line

SPLIT_NAMES = ("train", "val", "test")
CACHE_BYTES = 1 << 30  # layer matrices kept in memory at once (layer=all with seeds= reuses them)


class SelectionError(ValueError):
    """A selection that cannot be trained on; the message is one line naming the key."""


@dataclass
class Selection:
    """The keys every head config starts with (a head's `Config` subclasses this)."""
    dataset: str
    backbone: tuple[str, ...]    # one, or several fused: backbone=muq,campplus
    target: str = ""             # what the head predicts (the runs row's target); the head says which column
    split: str = "default"       # a split_name in `splits`
    layer: str = ""              # a stored layer name; empty: each backbone's default; all: every layer
    where: str = ""              # SQL predicate on tracks, e.g. where="speaker_id <> 't_3'"
    select: str = ""             # queries/NAME.sql returning track_id ($dataset is bound)
    seed: int = 0
    seeds: int = 1               # seeds=5 trains seed, seed+1, ... and reports mean ± std in one run

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
        if not self.seeds >= 1:
            raise ValueError(f"seeds={self.seeds}: must be 1 or more")

    @property
    def variant(self) -> str:
        """What tells two runs on the same data apart in `just compare`; a head may say more."""
        return ""


@dataclass
class Interactions:
    """`interactions` rows of the selection's tracks, ordered by user then time."""
    users: np.ndarray        # str, sorted: `user` indexes into it
    user: np.ndarray         # int64 per interaction
    track: np.ndarray        # int64 per interaction: the row in Data.track_ids (and in every feature matrix)
    weight: np.ndarray       # float64
    ts: np.ndarray           # datetime64[us], NaT where unknown
    synthetic: np.ndarray    # bool
    outside: int             # the dataset's interactions with tracks outside the selection


@dataclass
class Data:
    selection: Selection
    track_ids: np.ndarray        # str, sorted; every other array is aligned with it
    split: np.ndarray            # str: train | val | test
    columns: dict[str, np.ndarray]  # tracks column → values, types kept (see the module docstring)
    types: dict[str, str]        # tracks column → its DuckDB type, e.g. VARCHAR, DOUBLE, VARCHAR[]
    layers: list[str]            # what to train on: one entry, or every stored layer (layer=all)
    layer_of: dict[str, dict[str, str]]  # entry of `layers` → backbone → stored layer name
    dims: dict[str, int]         # backbone → width of its block of columns
    dropped_null: int            # selected rows dropped for a NULL in a required column
    base_fingerprint: str        # the selected rows, their split and columns, the embedding parts
    memo: dict = field(default_factory=dict, repr=False)  # a head's derived arrays (encoded targets), once per run
    _covered: dict = field(default_factory=dict, repr=False)  # label → digest of another table a head read
    _cache: dict = field(default_factory=dict, repr=False)
    clips: list = field(default_factory=list, repr=False)  # load_audio: embed.loader.Clip per row, aligned

    @property
    def fingerprint(self) -> str:
        """The run's data hash: the selection's, plus every other table the head read (`cover`)."""
        if not self._covered:
            return self.base_fingerprint
        digest = hashlib.sha256(self.base_fingerprint.encode())
        for label in sorted(self._covered):
            digest.update(f"\0{label}:{self._covered[label]}".encode())
        return digest.hexdigest()

    def cover(self, label: str, table: pa.Table) -> None:
        """Fold a table the head trains or evaluates on (interactions, a glossary, playlists, text
        vectors, another run's codes) into the fingerprint, so two runs with the same fingerprint
        saw the same data. Idempotent per label: a head called once per seed covers it once."""
        digest = arrow_bytes.sha256(table)
        if self._covered.setdefault(label, digest) != digest:
            raise SelectionError(f"the {label} table changed while this run was reading it: run again")

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

    def vectors(self, backbone: str, layer: str = "") -> np.ndarray:
        """Another backbone's vectors (not part of the fused features), in track_ids order."""
        key = ("vectors", backbone, layer)
        if key not in self._cache:
            files = parts(self.selection.dataset, backbone)
            if not files:
                raise SelectionError(f"backbone={backbone}: no embeddings for dataset {self.selection.dataset}: "
                                     f"run just embed dataset={self.selection.dataset} backbone={backbone}")
            try:
                stored = choose_layer(layer or None, stored_layers(files), f"backbone={backbone}")
            except ValueError as err:
                raise SelectionError(str(err)) from None
            self._cache[key] = _aligned(self.selection.dataset, backbone, stored, self.track_ids)
        return self._cache[key]

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]

    def part(self, name: str) -> np.ndarray:
        """bool mask of the rows in split part `name` (train, val or test)."""
        return self.split == name

    def parts(self) -> list[str]:
        return [p for p in SPLIT_NAMES if np.any(self.split == p)]

    def counts(self) -> dict[str, int]:
        """split part → rows."""
        return {p: int(np.sum(self.split == p)) for p in self.parts()}

    def interactions(self, con: duckdb.DuckDBPyConnection | None = None) -> Interactions:
        con = con or catalog.connect()
        con.register("selected_tracks", pa.table({"track_id": pa.array(self.track_ids, pa.string()),
                                                  "position": pa.array(np.arange(len(self.track_ids)))}))
        params = {"dataset": self.selection.dataset}
        rows = con.sql("""
            SELECT dense_rank() OVER (ORDER BY i.user_id) - 1 AS user, s.position AS track,
                   CAST(i.weight AS DOUBLE) AS weight, i.ts, i.synthetic
            FROM interactions i JOIN selected_tracks s USING (track_id)
            WHERE i.dataset = $dataset
            ORDER BY i.user_id, i.ts NULLS LAST, s.position""", params=params).to_arrow_table()
        users = con.sql("""
            SELECT DISTINCT i.user_id FROM interactions i JOIN selected_tracks s USING (track_id)
            WHERE i.dataset = $dataset ORDER BY 1""", params=params).to_arrow_table()
        total = con.execute("SELECT count(*) FROM interactions WHERE dataset = $dataset", params).fetchone()[0]
        self.cover("interactions", rows)
        self.cover("interaction users", users)
        return Interactions(
            users=users.column(0).to_numpy().astype(str), user=rows.column("user").to_numpy().astype(np.int64),
            track=rows.column("track").to_numpy().astype(np.int64), weight=rows.column("weight").to_numpy(),
            ts=rows.column("ts").to_numpy().astype("datetime64[us]"),
            synthetic=rows.column("synthetic").to_numpy(zero_copy_only=False).astype(bool),
            outside=int(total) - rows.num_rows)


def _types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {name: kind for name, kind, *_ in con.execute("DESCRIBE tracks").fetchall()}


def _check_names(con: duckdb.DuckDBPyConnection, sel: Selection, inputs: Inputs) -> dict[str, str]:
    datasets = [d for (d,) in con.execute("SELECT DISTINCT dataset FROM tracks ORDER BY 1").fetchall()]
    if sel.dataset not in datasets:
        raise SelectionError(f"dataset={sel.dataset!r} is not in the lake (datasets: {', '.join(datasets) or 'none'})")
    types = _types(con)
    for key, column in inputs.columns.items():
        if column not in types:
            raise SelectionError(f"{key}={column!r} is not a column of tracks (columns: {', '.join(types)})")
    names = [n for (n,) in con.execute(
        "SELECT DISTINCT split_name FROM splits WHERE dataset = $d ORDER BY 1", {"d": sel.dataset}).fetchall()]
    if sel.split not in names:
        target, group = inputs.columns.get("target"), inputs.columns.get("group")
        hint = (f" stratify={target}" if target and types[target] == "VARCHAR" else "") + (f" group={group}" if group else "")
        raise SelectionError(
            f"split={sel.split!r} does not exist for dataset {sel.dataset} (splits: {', '.join(names) or 'none'}); "
            f"make it with: just split dataset={sel.dataset} name={sel.split}{hint}")
    return types


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


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'  # names are checked against DESCRIBE first


def select_rows(con: duckdb.DuckDBPyConnection, sel: Selection, inputs: Inputs = Inputs()) -> pa.Table:
    """(track_id, split, the asked-for columns) of the selection, sorted by track_id."""
    _check_names(con, sel, inputs)
    # A split made before the dataset changed would silently leave new tracks out (and keep
    # gone ones): a number computed on it is a number on data nobody chose.
    stale_split = splits.coverage_problem(con, sel.dataset, sel.split)
    if stale_split:
        raise SelectionError(stale_split)
    ids = _selected_ids(con, sel)
    wanted = [c for c in dict.fromkeys(inputs.columns.values()) if c not in ("track_id", "split")]
    picked = "".join(f", t.{_quoted(c)}" for c in wanted)
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
            SELECT * FROM tracks WHERE dataset = $dataset {where} {restrict}
        ),
        in_split AS (
            SELECT track_id, split FROM splits WHERE dataset = $dataset AND split_name = $split
        )
        SELECT t.track_id, p.split{picked}
        FROM selected t JOIN in_split p USING (track_id)
        ORDER BY t.track_id"""
    try:
        return con.sql(sql, params={"dataset": sel.dataset, "split": sel.split}).to_arrow_table()
    except duckdb.Error as err:
        key = f"where={sel.where!r}" if sel.where else "the selection"
        raise SelectionError(f"{key}: DuckDB says: {one_line(err)}") from None


def _aligned(dataset: str, backbone: str, layer: str, track_ids: np.ndarray) -> np.ndarray:
    """Rows of the backbone's matrix for `track_ids`, in that order (vectorised join)."""
    try:
        emb = load_embeddings(dataset, backbone, layer, label=None)
    except (ValueError, FileNotFoundError) as err:  # e.g. vectors of audio that has since changed
        raise SelectionError(f"backbone={backbone}: {one_line(err)}") from None
    ids = emb.track_ids.astype(str)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    pos = np.searchsorted(ordered, track_ids)
    found = pos < len(ids)
    found[found] = ordered[pos[found]] == track_ids[found]
    if not found.all():
        missing = track_ids[~found]
        lacking = (f"backbone={backbone} (layer {layer}) has no vectors for {len(missing)} of {len(track_ids)} "
                   f"selected tracks (e.g. {', '.join(missing[:3])})")
        table = learned_from(dataset, backbone)
        if table:  # embedding again cannot help: those tracks are not (often enough) in the table
            raise SelectionError(
                f"{lacking}: its vectors are learned from the {table}, and these tracks are in none of them or "
                f"in fewer than its min_count; select the tracks it covers, e.g. where=\"track_id IN (SELECT "
                f"track_id FROM embeddings WHERE backbone = '{backbone}')\"")
        raise SelectionError(f"{lacking}: run just embed dataset={dataset} backbone={backbone}")
    rows = order[pos]
    if len(rows) == len(emb.matrix) and np.array_equal(rows, np.arange(len(rows))):
        return emb.matrix  # already in track_ids order: no second copy of a big matrix
    return emb.matrix[rows]


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
    with storage.open_read(path) as handle:
        handle.seek(-8, 2)
        tail = handle.read(8)
        length = int.from_bytes(tail[:4], "little")
        handle.seek(-(8 + length), 2)
        return hashlib.sha256(handle.read(length)).hexdigest()


def _hashable(values: np.ndarray, arrow: pa.ChunkedArray) -> bytes:
    """A column's bytes for the fingerprint, without per-row Python: fixed-width unicode for text
    (plus the NULL mask when there are NULLs), raw bytes for numbers, Arrow IPC for the rest."""
    if pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type):
        text = values.astype(str)
        nulls = arrow.is_null().to_numpy(zero_copy_only=False)
        return f"{text.dtype.str}:{len(text)}\0".encode() + text.tobytes() + (nulls.tobytes() if nulls.any() else b"")
    if values.dtype != object:
        return f"{values.dtype.str}:{len(values)}\0".encode() + values.tobytes()
    return arrow_bytes.ipc_bytes(pa.table({"v": arrow}))


def fingerprint(sel: Selection, names: list[str], columns: list[bytes], layer_of: dict[str, dict[str, str]],
                embedding_parts: bool = True) -> str:
    """Same selected rows (id, split, the head's columns) and same embedding part files → same hash.

    Part files are identified by name, size and a hash of their footer, not of their bytes
    (GBs for a big backbone): a re-embedding that changes any vector changes the chunk
    statistics or sizes in the footer; a copy of the lake elsewhere keeps its fingerprint.
    """
    digest = hashlib.sha256(b"audiolake-data-v1\0")
    digest.update(json.dumps([sel.dataset, sel.split, ",".join(names), layer_of], sort_keys=True).encode())
    for column in columns:
        digest.update(b"\0" + column)
    for backbone in sel.backbone if embedding_parts else ():
        for part in parts(sel.dataset, backbone):
            digest.update(f"\0{backbone}/{part.name}:{part.stat().st_size}:{_footer_digest(part)}".encode())
    return digest.hexdigest()


def _drop_nulls(rows: pa.Table, inputs: Inputs) -> tuple[pa.Table, int]:
    if not inputs.required or rows.num_rows == 0:
        return rows, 0
    null = np.zeros(rows.num_rows, bool)
    for key in inputs.required:
        column_null = rows.column(inputs.columns[key]).is_null().to_numpy(zero_copy_only=False)
        if column_null.all():
            raise SelectionError(f"{key}={inputs.columns[key]} is NULL for all {rows.num_rows} selected tracks")
        null |= column_null
    if null.all():
        raise SelectionError(f"every selected track has a NULL in one of "
                             f"{', '.join(f'{k}={inputs.columns[k]}' for k in inputs.required)}")
    return (rows.filter(pa.array(~null)) if null.any() else rows), int(null.sum())


@dataclass
class _Selected:
    rows: pa.Table           # NULLs in required columns dropped
    track_ids: np.ndarray    # str, sorted, each once
    split: np.ndarray        # str: train | val | test
    dropped: int
    types: dict[str, str]    # tracks column → DuckDB type


def _selected(sel: Selection, inputs: Inputs, con: duckdb.DuckDBPyConnection) -> _Selected:
    """The selection's rows and their ids and split, checked, with the tracks column types."""
    rows = select_rows(con, sel, inputs)
    if rows.num_rows == 0:
        extra = f" where={sel.where!r}" if sel.where else ""
        extra += f" select={sel.select}" if sel.select else ""
        raise SelectionError(f"the selection is empty: no tracks of dataset {sel.dataset} in split "
                             f"{sel.split!r}{extra}")
    rows, dropped = _drop_nulls(rows, inputs)
    split = rows.column("split").to_numpy(zero_copy_only=False).astype(str)
    unknown = sorted(set(np.unique(split)) - set(SPLIT_NAMES))
    if unknown:
        raise SelectionError(f"split={sel.split!r} assigns {unknown[0]!r}: splits are train, val or test")
    for part in ("train", "val"):
        if not np.any(split == part):
            raise SelectionError(f"split={sel.split!r} has no {part} rows in the selection "
                                 f"({len(split)} rows: {', '.join(f'{p} {int(np.sum(split == p))}' for p in SPLIT_NAMES)})")
    track_ids = rows.column("track_id").to_numpy(zero_copy_only=False).astype(str)
    repeated = track_ids[1:][track_ids[1:] == track_ids[:-1]]  # sorted: a repeat sits next to itself
    if len(repeated):
        raise SelectionError(f"split={sel.split!r} lists {len(repeated)} track(s) twice (e.g. {repeated[0]}): "
                             "remake it with just split")
    return _Selected(rows, track_ids, split, dropped, _types(con))


def _arrays(picked: _Selected, names: list[str]) -> tuple[dict[str, np.ndarray], list[bytes]]:
    """The named columns, and the bytes the fingerprint hashes."""
    rows, track_ids, split = picked.rows, picked.track_ids, picked.split
    columns = {name: rows.column(name).to_numpy() for name in names}
    hashed = [f"{track_ids.dtype.str}:{len(track_ids)}\0".encode() + track_ids.tobytes(),
              f"{split.dtype.str}:{len(split)}\0".encode() + split.tobytes()]
    hashed += [_hashable(columns[name], rows.column(name)) for name in names]
    return columns, hashed


def load(sel: Selection, inputs: Inputs = Inputs(), con: duckdb.DuckDBPyConnection | None = None) -> Data:
    """The selection's rows, the asked-for columns and (per layer, on demand) features."""
    con = con or catalog.connect()
    picked = _selected(sel, inputs, con)
    layers, layer_of = resolve_layers(sel)
    names = list(dict.fromkeys(inputs.columns.values()))
    columns, hashed = _arrays(picked, names)
    digest = fingerprint(sel, names, hashed, layer_of)
    data = Data(sel, picked.track_ids, picked.split, columns, {n: picked.types[n] for n in names}, layers, layer_of,
                {}, picked.dropped, digest)
    data.features(layers[0])  # checks coverage now, not after the first layer has trained
    for backbone in inputs.backbones:
        data.vectors(backbone)
    return data


CLIP_COLUMNS = ("sha256", "shard", "offset", "nbytes", "duration_s")  # where a clip's bytes are (embed.loader.Clip)


def load_audio(sel: Selection, layer: str, inputs: Inputs = Inputs(),
               con: duckdb.DuckDBPyConnection | None = None) -> Data:
    """The selection for a head that trains on raw audio (LoRA): the same rows and columns as `load`,
    no stored vectors, and `data.clips` — each row's byte range in its shard, from the `tracks`
    manifest — for `embed.loader` to read and decode. The fingerprint covers the clips' sha256
    (the audio itself) instead of embedding parts; `layer` is the one stored layer name trained on."""
    con = con or catalog.connect()
    wanted = Inputs({**inputs.columns, **{f"clip {c}": c for c in CLIP_COLUMNS}}, inputs.required, inputs.backbones)
    picked = _selected(sel, wanted, con)
    names = list(dict.fromkeys(wanted.columns.values()))
    columns, hashed = _arrays(picked, names)
    layer_of = {layer: {backbone: layer for backbone in sel.backbone}}
    digest = fingerprint(sel, names, hashed, layer_of, embedding_parts=False)
    from embed.loader import Clip

    clips = [Clip(t, *values)
             for t, *values in zip(picked.track_ids.tolist(), *(columns[c].tolist() for c in CLIP_COLUMNS))]
    own = list(dict.fromkeys(inputs.columns.values()))
    data = Data(sel, picked.track_ids, picked.split, {n: columns[n] for n in own}, {n: picked.types[n] for n in own},
                [layer], layer_of, {}, picked.dropped, digest)
    data.clips = clips
    return data
