"""The DuckDB catalog: one view per table over its Parquet parts.

`connect()` gives an in-memory connection with the views, so our own commands never contend
for the lock on `lake.duckdb`; `refresh()` writes the same views into `lake.duckdb` so any
DuckDB client (CLI, DBeaver, a notebook) opened on that file can query the lake directly.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

from lake import paths
from lake.schemas import PARTITIONS, TABLES, duckdb_type


def _parts_glob(table: str) -> str:
    return str(paths.table_dir(table) / "**" / "*.parquet")


def has_parts(table: str) -> bool:
    directory = paths.table_dir(table)
    return directory.is_dir() and any(directory.rglob("*.parquet"))


def view_sql(table: str) -> str:
    """The view definition: all parts when any exist, else a typed empty relation."""
    if has_parts(table):
        glob = _parts_glob(table).replace("'", "''")
        # hive_types_autocast off: a dataset called "2024" must stay a string.
        return (
            f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{glob}', "
            "hive_partitioning = true, union_by_name = true, hive_types_autocast = false)"
        )
    columns = ", ".join(
        f"CAST(NULL AS {duckdb_type(field.type)}) AS {field.name}" for field in TABLES[table]
    )
    return f"CREATE OR REPLACE VIEW {table} AS SELECT {columns} WHERE false"


def vector_view_name(backbone: str) -> str:
    return "emb_" + re.sub(r"[^A-Za-z0-9_]", "_", backbone).lower()


def vector_views(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """`emb_<backbone>`: that backbone's vectors with `emb` cast to FLOAT[dim].

    The shared `embeddings` view mixes widths, so it can only say FLOAT[]; array functions
    such as array_cosine_similarity need the fixed width, which is one per backbone.
    """
    if not has_parts("backbones") or not has_parts("embeddings"):
        return {}
    views = {}
    for backbone, dim in con.execute("SELECT backbone, dim FROM backbones ORDER BY 1").fetchall():
        if not list(paths.table_dir("embeddings").glob(f"*/backbone={backbone}/*.parquet")):
            continue
        glob = str(paths.table_dir("embeddings") / "*" / f"backbone={backbone}" / "*.parquet").replace("'", "''")
        name = vector_view_name(backbone)
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT dataset, backbone, track_id, sha256, layer, "
            f"CAST(emb AS FLOAT[{int(dim)}]) AS emb FROM read_parquet('{glob}', hive_partitioning = true, "
            "hive_types_autocast = false)"
        )
        views[backbone] = name
    return views


def install_views(con: duckdb.DuckDBPyConnection) -> None:
    # Vector views of backbones that no longer exist must not linger in lake.duckdb.
    for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name LIKE 'emb\\_%' ESCAPE '\\'"
    ).fetchall():
        con.execute(f'DROP VIEW "{name}"')
    for table in TABLES:
        con.execute(view_sql(table))
    vector_views(con)


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_views(con)
    return con


def refresh() -> Path | None:
    """Rewrites the views in lake.duckdb; returns None when another process holds its lock."""
    target = paths.catalog_file()
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
    con = duckdb.connect()
    stats = []
    for table in TABLES:
        files = sorted(paths.table_dir(table).rglob("*.parquet")) if has_parts(table) else []
        rows = 0
        if files:
            glob = _parts_glob(table).replace("'", "''")
            rows = con.execute(
                f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata('{glob}')"
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
