"""One byte form of an Arrow table, for hashing: the same rows give the same bytes.

The Arrow IPC stream writes one message per record batch, so the same rows split into chunks
differently (DuckDB's result batches follow its threads) would give different bytes. The
chunks are combined first: one batch, whatever the table's history.
"""
from __future__ import annotations

import hashlib

import pyarrow as pa


def ipc_bytes(table: pa.Table) -> bytes:
    combined = table.combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, combined.schema) as writer:
        writer.write_table(combined)
    return sink.getvalue().to_pybytes()


def sha256(table: pa.Table) -> str:
    return hashlib.sha256(ipc_bytes(table)).hexdigest()
