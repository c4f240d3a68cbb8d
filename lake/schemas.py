"""Table schemas: the one definition used by writers, catalog views and tests.

Identity fields come first, known metadata next; unknown source columns are appended after
them by the writer (an escape hatch, never dropped). DESIGN.md §4 is the prose version.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa

TRACKS_IDENTITY = pa.schema([
    ("dataset", pa.string()),
    ("track_id", pa.string()),
    ("shard", pa.string()),       # path of the tar relative to the lake root
    ("key", pa.string()),         # WebDataset sample key inside the shard (no dots)
    ("offset", pa.int64()),       # byte offset of the audio member's data inside the tar
    ("nbytes", pa.int64()),       # size of the audio member
    ("format", pa.string()),      # original container/codec extension: wav, flac, mp3, ...
    ("sha256", pa.string()),      # of the audio bytes as stored
    ("duration_s", pa.float64()),
    ("sample_rate", pa.int32()),
    ("channels", pa.int16()),
    ("source", pa.string()),      # where the clip came from: path, hub id + row, generator
])

TRACKS_METADATA = pa.schema([
    ("split", pa.string()),
    ("label", pa.string()),
    ("culture", pa.string()),
    ("affect_label", pa.string()),
    ("speaker_id", pa.string()),
    ("group_id", pa.string()),
    ("score", pa.float64()),
    ("rank", pa.int32()),
    ("text", pa.string()),
    ("terms", pa.list_(pa.string())),
    ("title", pa.string()),
])

TRACKS = pa.schema(list(TRACKS_IDENTITY) + list(TRACKS_METADATA))

def embeddings_schema(dim: int | None = None) -> pa.Schema:
    """One row per (track, layer). `emb` is a fixed-size list of `dim` float32 in Parquet;
    DuckDB reads it as FLOAT[] and the per-backbone views cast it to FLOAT[dim]."""
    element = pa.field("element", pa.float32(), nullable=False)
    emb = pa.list_(element, dim) if dim else pa.list_(element)
    return pa.schema([
        ("dataset", pa.string()),
        ("backbone", pa.string()),
        ("track_id", pa.string()),
        ("sha256", pa.string()),   # of the audio the vector was computed from: stale vectors show
        ("layer", pa.string()),
        pa.field("emb", emb, nullable=False),
    ])


EMBEDDINGS = embeddings_schema()

BACKBONES = pa.schema([
    ("backbone", pa.string()),     # the name vectors are stored under
    ("spec", pa.string()),         # what the user asked for: an alias or hf:<id or dir>
    ("model_id", pa.string()),
    ("revision", pa.string()),     # hub commit, weight file hash or algorithm version
    ("sample_rate", pa.int32()),
    ("dim", pa.int32()),
    ("layers", pa.list_(pa.string())),
    ("pooling", pa.string()),
    ("max_seconds", pa.float64()),
    ("chunking", pa.string()),
    ("precision", pa.string()),
    ("settings", pa.string()),     # JSON of every option that changes vectors
    ("packages", pa.string()),     # JSON {package: version}
    ("created_at", pa.timestamp("us", tz="UTC")),
])

SPLITS = pa.schema([
    ("dataset", pa.string()),
    ("split_name", pa.string()),  # several named splits live side by side
    ("track_id", pa.string()),
    ("split", pa.string()),       # train | val | test
    ("sha256", pa.string()),      # of the track's audio when the split was made: a changed track shows
])

INTERACTIONS = pa.schema([
    ("dataset", pa.string()),
    ("user_id", pa.string()),
    ("track_id", pa.string()),
    ("weight", pa.float64()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("synthetic", pa.bool_()),
])

# Held-out interactions of a recommender: each (user, track) pair of a dataset's interactions is
# train or test under a named, seeded split, so a rerun evaluates the same pairs (DESIGN §4).
INTERACTION_SPLITS = pa.schema([
    ("dataset", pa.string()),
    ("split_name", pa.string()),
    ("user_id", pa.string()),
    ("track_id", pa.string()),
    ("part", pa.string()),        # train | test
])

RUNS = pa.schema([
    ("run_id", pa.string()),
    ("head", pa.string()),
    ("dataset", pa.string()),
    ("backbones", pa.list_(pa.string())),  # several when features are fused (a join on track_id)
    ("layer", pa.string()),
    ("split_name", pa.string()),
    ("target", pa.string()),
    ("config", pa.string()),              # JSON: the resolved config
    ("metrics", pa.string()),             # JSON: what evaluate() returned
    ("packages", pa.string()),            # JSON {package: version}
    ("git_commit", pa.string()),
    ("data_fingerprint", pa.string()),    # hash of selected ids, split assignment, embedding parts
    ("created_at", pa.timestamp("us", tz="UTC")),
    ("path", pa.string()),                # the run folder, relative to the lake root
])

PLAYLISTS = pa.schema([
    ("dataset", pa.string()),
    ("playlist_id", pa.string()),
    ("title", pa.string()),
    ("position", pa.int32()),     # the song's place in the playlist, from 0
    ("track_id", pa.string()),    # may name a track without audio in `tracks` (kept, counted)
    ("song_title", pa.string()),  # from the song list, so songs without audio still print by name
    ("artist", pa.string()),
])

SEMANTIC_IDS = pa.schema([
    ("dataset", pa.string()),
    ("backbone", pa.string()),    # the vectors the codes quantise (comma-joined when fused)
    ("run_id", pa.string()),      # the head=semantic_ids run that wrote them
    ("track_id", pa.string()),
    ("codes", pa.list_(pa.int32())),  # one code per level (plus the dedup digit when asked)
])

GLOSSARY = pa.schema([
    ("dataset", pa.string()),
    ("term", pa.string()),         # normalised (ingest.glossary.normal): a main term or an alias
    ("main_term", pa.string()),    # the term itself, or the main term the alias stands for
    ("description", pa.string()),
])

TEXT_EMBEDDINGS = pa.schema([
    ("text_model", pa.string()),   # the partition: a path-safe key of `model` (heads/retrieval_text.py)
    ("model", pa.string()),        # the text model as asked for: hash, hf:<id or dir>, muq-mulan
    ("text", pa.string()),         # a term or a chunk text, as encoded
    pa.field("emb", pa.list_(pa.field("element", pa.float32(), nullable=False)), nullable=False),
])

# Tables written by later stages; their schemas join this dict as their stages land.
TABLES: dict[str, pa.Schema] = {
    "tracks": TRACKS,
    "embeddings": EMBEDDINGS,
    "backbones": BACKBONES,
    "splits": SPLITS,
    "interactions": INTERACTIONS,
    "interaction_splits": INTERACTION_SPLITS,
    "runs": RUNS,
    "playlists": PLAYLISTS,
    "semantic_ids": SEMANTIC_IDS,
    "glossary": GLOSSARY,
    "text_embeddings": TEXT_EMBEDDINGS,
}

# Hive partition keys per table: the directory levels under tables/<table>/.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "tracks": ("dataset",),
    "embeddings": ("dataset", "backbone"),
    "backbones": ("backbone",),
    "splits": ("dataset", "split_name"),
    "interactions": ("dataset",),
    "interaction_splits": ("dataset", "split_name"),
    "runs": ("dataset",),
    "playlists": ("dataset",),
    "semantic_ids": ("dataset", "run_id"),
    "glossary": ("dataset",),
    "text_embeddings": ("text_model",),
}

# Columns a part must have to be read as that table (with types `compatible_type` accepts);
# any other column may be missing (the view fills NULL), so parts of older versions still read.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "tracks": ("track_id", "shard", "key", "offset", "nbytes", "sha256"),
    "embeddings": ("track_id", "sha256", "layer", "emb"),
    "backbones": ("backbone", "dim"),
    "splits": ("track_id", "split"),
    "interactions": ("user_id", "track_id"),
    "interaction_splits": ("user_id", "track_id", "part"),
    "runs": ("run_id", "head"),
    "playlists": ("playlist_id", "track_id"),
    "semantic_ids": ("track_id", "codes"),
    "glossary": ("term", "main_term"),
    "text_embeddings": ("text", "emb"),
}


def _family(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "time"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        return "list"
    return str(arrow_type)


def compatible_type(actual: pa.DataType, wanted: pa.DataType) -> bool:
    """Whether a column stored as `actual` reads as `wanted` beside parts that store `wanted`:
    the same kind of value (text, number, time, list of the same kind); widths may differ."""
    if pa.types.is_null(actual):
        return True
    if _family(actual) != _family(wanted):
        return False
    return _family(wanted) != "list" or compatible_type(actual.value_type, wanted.value_type)


def coerce_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Known metadata converted to its schema type; a value that cannot be is a ValueError
    naming the column, raised per clip so the clip is reported rather than the commit failing."""
    out = dict(meta)
    for field in TRACKS_METADATA:
        value = out.get(field.name)
        if value is None:
            continue
        try:
            if pa.types.is_string(field.type):
                out[field.name] = str(value)
            elif pa.types.is_floating(field.type):
                out[field.name] = float(value)
            elif pa.types.is_integer(field.type):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                out[field.name] = int(value)
            elif pa.types.is_list(field.type):
                if isinstance(value, str) or not hasattr(value, "__iter__"):
                    raise ValueError
                out[field.name] = [str(v) for v in value]
        except (TypeError, ValueError):
            raise ValueError(f"{field.name}={value!r} is not a valid {field.type}") from None
    return out


def tracks_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Builds a tracks table: known columns typed by the schema, extra columns inferred.

    Extra columns whose values do not share one Arrow type are stored as strings rather than
    failing or losing the column.
    """
    known = {field.name for field in TRACKS}
    extras: list[str] = []
    for row in rows:
        for name in row:
            if name not in known and name not in extras:
                extras.append(name)
    arrays, fields = [], []
    for field in TRACKS:
        values = [row.get(field.name) for row in rows]
        arrays.append(pa.array(values, type=field.type))
        fields.append(field)
    for name in extras:
        values = [row.get(name) for row in rows]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        if pa.types.is_null(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def duckdb_type(arrow_type: pa.DataType) -> str:
    """DuckDB spelling of an Arrow type, for typed empty views of tables not yet written."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_int16(arrow_type):
        return "SMALLINT"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_float32(arrow_type):
        return "FLOAT"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_fixed_size_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[{arrow_type.list_size}]"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"{duckdb_type(arrow_type.value_type)}[]"
    raise TypeError(f"no DuckDB type for {arrow_type}")
