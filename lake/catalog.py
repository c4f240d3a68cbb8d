"""The DuckDB catalog: one view per table over its Parquet parts (as listed by `lake.parts`).

`embeddings` serves only vectors made from each track's current audio; `stored_embeddings` is
every stored row, and `stale_embeddings` the stored rows it does not serve, with `why`.

`connect()` gives an in-memory connection with the views, so our own commands never contend
for the lock on `lake.duckdb`; `refresh()` writes the same views into `lake.duckdb` so any
DuckDB client (CLI, DBeaver, a notebook) opened on that file can query the lake directly.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

from lake import paths, storage
from lake.parts import Listing, list_table
from lake.schemas import PARTITIONS, TABLES, duckdb_type


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


def _read_parts(parts: Listing) -> str:
    """read_parquet over an explicit list from `lake.parts`: a damaged or foreign file that
    the listing skipped can never reach a view, as it could through a glob."""
    # union_by_name reads every footer each time a query binds (~0.1 s per 1,000 parts), so
    # only parts of different schemas pay for it. hive_types_autocast off: a dataset called
    # "2024" must stay a string.
    union = "union_by_name = true, " if parts.schemas > 1 else ""
    return (f"read_parquet({_file_list(parts.files)}, hive_partitioning = true, {union}"
            "hive_types_autocast = false)")


def _empty(table: str) -> str:
    columns = ", ".join(
        f"CAST(NULL AS {duckdb_type(field.type)}) AS {field.name}" for field in TABLES[table]
    )
    return f"SELECT {columns} WHERE false"


def view_sql(table: str, parts: Listing | None = None) -> str:
    """The view over a table's parts (as listed now when `parts` is None), else a typed empty relation.

    `embeddings` is special: its parts are the view `stored_embeddings`, and `embeddings`
    serves only the rows made from a track's current audio (`EMBEDDINGS_VIEWS`)."""
    parts = list_table(table) if parts is None else parts
    name = "stored_embeddings" if table == "embeddings" else table
    body = f"SELECT * FROM {_read_parts(parts)}" if parts.files else _empty(table)
    return f"CREATE OR REPLACE VIEW {name} AS {body}"


# A vector (alias `e`) is current when a tracks row has its dataset, track id and audio hash;
# where either side has no hash (a table written by hand or by another tool) only the id can be
# matched. Written as IN-subqueries (mark joins, whose hash table is always built on the narrow
# tracks side), not as a semi join: DuckDB may flip a semi join to hash every vector instead,
# 3-4x slower on 100k x 768 (nearest_neighbours.sql).
CURRENT = ("coalesce(CASE WHEN e.sha256 IS NULL "
           "THEN (e.dataset, e.track_id) IN (SELECT dataset, track_id FROM tracks) "
           "ELSE (e.dataset, e.track_id, e.sha256) IN (SELECT dataset, track_id, sha256 FROM tracks) "
           "OR (e.dataset, e.track_id) IN (SELECT dataset, track_id FROM tracks WHERE sha256 IS NULL) END, false)")

EMBEDDINGS_VIEWS = [
    # what readers get: vectors of the audio each track has now
    f"CREATE OR REPLACE VIEW embeddings AS SELECT e.* FROM stored_embeddings AS e WHERE {CURRENT}",
    # what they do not get, and why: still in the parts until the next `just embed` prunes them
    "CREATE OR REPLACE VIEW stale_embeddings AS "
    "SELECT e.dataset, e.backbone, e.track_id, e.sha256, e.layer, c.sha256 AS current_sha256, "
    "CASE WHEN c.track_id IS NULL THEN 'track removed' ELSE 'audio changed' END AS why "
    "FROM stored_embeddings AS e "
    "LEFT JOIN (SELECT dataset, track_id, max(sha256) AS sha256 FROM tracks GROUP BY ALL) AS c "
    f"ON c.dataset = e.dataset AND c.track_id = e.track_id WHERE NOT {CURRENT}",
]


def vector_view_name(backbone: str) -> str:
    return "emb_" + re.sub(r"[^A-Za-z0-9_]", "_", backbone).lower()


def vector_views(con: duckdb.DuckDBPyConnection, parts: Listing | None = None) -> dict[str, str]:
    """`emb_<backbone>`: that backbone's current vectors with `emb` cast to FLOAT[dim].

    The shared `embeddings` view mixes widths, so it can only say FLOAT[]; array functions
    such as array_cosine_similarity need the fixed width, which is one per backbone.
    """
    parts = list_table("embeddings") if parts is None else parts
    if not parts.files:
        return {}
    views = {}
    for backbone, dim in con.execute("SELECT backbone, dim FROM backbones ORDER BY 1").fetchall():
        own = parts.where(lambda f: f.parent.name == f"backbone={backbone}")
        if not own.files:
            continue
        name = vector_view_name(backbone)
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT e.dataset, e.backbone, e.track_id, e.sha256, e.layer, "
            f"CAST(e.emb AS FLOAT[{int(dim)}]) AS emb FROM {_read_parts(own)} AS e WHERE {CURRENT}"
        )
        views[backbone] = name
    return views


def install_views(con: duckdb.DuckDBPyConnection) -> None:
    # Vector views of backbones that no longer exist must not linger in lake.duckdb.
    for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name LIKE 'emb\\_%' ESCAPE '\\'"
    ).fetchall():
        con.execute(f'DROP VIEW "{name}"')
    listed = {table: list_table(table) for table in TABLES}
    for table, files in listed.items():
        con.execute(view_sql(table, files))
    for sql in EMBEDDINGS_VIEWS:
        con.execute(sql)
    vector_views(con, listed["embeddings"])


def open_duckdb(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read the lake's files, wherever the lake is."""
    con = duckdb.connect(database)
    storage.attach(con, paths.root())
    return con


def connect() -> duckdb.DuckDBPyConnection:
    con = open_duckdb()
    install_views(con)
    return con


def refresh() -> Path | None:
    """Rewrites the views in lake.duckdb; returns None when another process holds its lock, or
    when the lake is in S3: a DuckDB database file cannot live in object storage, and its views
    would need our S3 reader registered, so S3 lakes are read through `connect()` only."""
    target = paths.catalog_file()
    if storage.is_object(target):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(target))
    except duckdb.IOException:
        return None
    try:
        install_views(con)
    finally:
        con.close()
    return target


def table_stats() -> list[dict]:
    """Rows, partitions, files and bytes per table, read from Parquet footers (no data scan)."""
    con = open_duckdb()
    stats = []
    for table in TABLES:
        files = list_table(table).files
        rows = 0
        if files:
            rows = con.execute(
                f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata({_file_list(files)})"
            ).fetchone()[0]
        depth = len(PARTITIONS.get(table, ()))
        partitions = {f.parent for f in files} if depth else set()
        stats.append({
            "table": table,
            "rows": int(rows),
            "partitions": len(partitions),
            "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
        })
    con.close()
    return stats
