"""Embedding matrices stored as Parquet, and read back into numpy at close to `np.load` speed.

Embeddings live in a column `emb` of Arrow type FixedSizeList<float32 not null>[dim], not
null, so DuckDB can query them (`read_parquet` gives FLOAT[]; a view casts to FLOAT[dim] for
`array_cosine_similarity`). Parquet stores such a column as a list: one repetition level and one
definition level per float. Every general reader decodes those levels, one per float, and that
is the cost. Measured for 200k x 768 float32: `np.load` of a .npy 0.10-0.15 s; pyarrow
`read_table` -> numpy 1.2 s (v1 pages) / 0.67 s (v2 pages, required fields, uncompressed);
DuckDB -> Arrow 1.1-2.7 s. A fixed-size list of required floats carries no information in
its levels, so `read_matrix` skips them: it walks the page headers itself (a small Thrift
compact-protocol decoder) and reads each page's values straight into a preallocated
[n, dim] float32 array, one `readinto` per page, about one copy in all: 0.11 s for the same
matrix, level with `np.load` (bench/read_path.py).

The fast path is taken for a row group's column chunk only when ALL of these hold (else that
chunk is read by pyarrow, same result, slower; `READ_PATHS` counts which path each took):
  * little-endian host; the file's stored Arrow schema gives `column` as a non-nullable
    FixedSizeList of non-nullable float32 (files without one, e.g. DuckDB's COPY, say only
    "list"), stored as one FLOAT leaf with max definition and repetition level 1;
  * the chunk's codec is UNCOMPRESSED, it has no dictionary page, and no file_path;
  * every page is DATA_PAGE_V2, PLAIN, num_nulls == 0, compressed size == uncompressed size
    == rep-level bytes + def-level bytes + 4 * num_values;
  * the pages end exactly at the chunk's end and hold rows * dim values over `rows` rows.
`VECTOR_WRITE_OPTIONS` / `write_vector_parquet` write files that qualify. Page CRCs are not
checked (the writer does not write them); a header that does not decode falls back to
pyarrow, and any pyarrow error is re-raised as `VectorReadError` naming the file.
"""
from __future__ import annotations

import io
import mmap
import os
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import storage
from lake.atomic import atomic_path

# Writer properties valid for both `pq.write_table` and `pq.ParquetWriter`. Float32 embeddings
# barely compress (589 vs 542 MB with zstd), so pages stay uncompressed and readable in place.
VECTOR_WRITE_OPTIONS: dict = dict(compression="none", data_page_version="2.0",
                                  use_dictionary=False, write_statistics=True, store_schema=True)
ROW_GROUP_SIZE = 65536  # rows; pass as `row_group_size=` to write_table (not a writer property)
READ_PATHS: Counter = Counter()  # "fast" / "fallback: <reason>" per column chunk read


class VectorReadError(ValueError):
    """A vector file that cannot be read; the message names the file."""


def vector_type(dim: int) -> pa.DataType:
    return pa.list_(pa.field("element", pa.float32(), nullable=False), dim)


def vector_field(dim: int, name: str = "emb") -> pa.Field:
    return pa.field(name, vector_type(dim), nullable=False)


def vector_write_options(schema: pa.Schema) -> dict:
    """`VECTOR_WRITE_OPTIONS` with dictionary encoding switched on for the string columns only."""
    strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return {**VECTOR_WRITE_OPTIONS, "use_dictionary": strings or False}


def write_vector_parquet(tables: pa.Table | Iterable[pa.Table], target: Path,
                         metadata: dict[str, str] | None = None, column: str = "emb") -> Path:
    """Atomically writes one table, or several (each starts its own row group(s): e.g. one per
    layer), with `column` cast to `vector_field(dim)`, so `read_matrix` takes its fast path."""
    parts = [tables] if isinstance(tables, pa.Table) else list(tables)
    if not parts or not pa.types.is_fixed_size_list(parts[0].schema.field(column).type):
        raise ValueError(f"write_vector_parquet: need tables with a fixed-size list column {column!r}")
    dim, i = parts[0].schema.field(column).type.list_size, parts[0].schema.get_field_index(column)
    schema = parts[0].schema.set(i, vector_field(dim, column))
    if metadata:
        schema = schema.with_metadata({**(schema.metadata or {}),
                                       **{k.encode(): v.encode() for k, v in metadata.items()}})
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema, **vector_write_options(schema)) as writer:
        for part in parts:
            col = part.column(column)
            if col.null_count or any(chunk.flatten().null_count for chunk in col.chunks):
                raise ValueError(f"{column}: embeddings must not contain nulls")
            writer.write_table(part.cast(schema), row_group_size=ROW_GROUP_SIZE)
    return storage.path(target)


# --- Thrift compact protocol: just enough to decode a PageHeader and skip what we don't use.

def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        result, pos, shift = result | (byte & 0x7F) << shift, pos + 1, shift + 7
        if byte < 0x80:
            return result, pos
        if shift > 63:
            raise ValueError("varint too long")


def _value(buf, pos: int, kind: int, depth: int):
    """(value, next pos) of one value of compact type `kind`; containers are skipped (None)."""
    if kind in (1, 2):                                  # bool in a field header: no payload
        return kind == 1, pos
    if kind == 3:                                       # byte
        return buf[pos], pos + 1
    if kind in (4, 5, 6):                               # zigzag i16 / i32 / i64
        n, pos = _varint(buf, pos)
        return (n >> 1) ^ -(n & 1), pos
    if kind == 7:                                       # double
        return None, pos + 8
    if kind == 8:                                       # binary
        n, pos = _varint(buf, pos)
        return None, pos + n
    if kind == 12:
        return _struct(buf, pos, depth + 1)
    if kind in (9, 10, 11) and depth < 16:              # list / set / map
        if kind == 11:
            size, pos = _varint(buf, pos)
            kinds = [buf[pos] >> 4, buf[pos] & 0x0F] if size else []
            pos += 1 if size else 0
        else:
            size, kinds, pos = buf[pos] >> 4, [buf[pos] & 0x0F], pos + 1
            if size == 15:
                size, pos = _varint(buf, pos)
        for _ in range(size):
            for k in kinds:                             # bools in containers take a byte
                pos = pos + 1 if k in (1, 2) else _value(buf, pos, k, depth + 1)[1]
        return None, pos
    raise ValueError(f"bad thrift type {kind} at depth {depth}")


def _struct(buf, pos: int, depth: int = 0) -> tuple[dict, int]:
    fields, last = {}, 0
    while (head := buf[pos]) != 0:
        pos += 1
        if head >> 4:
            last += head >> 4
        else:
            n, pos = _varint(buf, pos)
            last = (n >> 1) ^ -(n & 1)
        fields[last], pos = _value(buf, pos, head & 0x0F, depth)
    return fields, pos + 1


# --- Reading.

class _Slow(Exception):
    """This column chunk does not qualify for the fast path; the message says why."""


def _fast_leaf(pf: pq.ParquetFile, column: str) -> int:
    """Index of the column's one FLOAT leaf when the file-level conditions hold, else _Slow."""
    field = pf.schema_arrow.field(column)
    if sys.byteorder != "little":
        raise _Slow("big-endian host")
    if not (pa.types.is_fixed_size_list(field.type) and field.type.value_type == pa.float32()):
        raise _Slow(f"type {field.type}")
    if field.nullable or field.type.value_field.nullable:
        raise _Slow("nullable")
    leaves = [pf.schema.column(i) for i in range(pf.metadata.num_columns)]
    found = [i for i, c in enumerate(leaves) if c.path.split(".")[0] == column]
    if len(found) != 1:
        raise _Slow(f"{len(found)} leaves under {column!r}")
    c = leaves[found[0]]
    if (c.physical_type, c.max_definition_level, c.max_repetition_level) != ("FLOAT", 1, 1):
        raise _Slow(f"leaf {c.physical_type} def={c.max_definition_level} rep={c.max_repetition_level}")
    return found[0]


def _plan_chunk(buf, cc, rows: int, dim: int) -> list[tuple[int, int]]:
    """(file offset, nbytes) of each page's values in column chunk `cc`, or _Slow with the reason."""
    if cc.compression != "UNCOMPRESSED" or cc.has_dictionary_page or cc.file_path:
        raise _Slow(f"chunk {cc.compression} dictionary={cc.has_dictionary_page}")
    pos, end = cc.data_page_offset, cc.data_page_offset + cc.total_compressed_size
    if pos < 4 or end > len(buf):
        raise _Slow("chunk outside the file")
    segments, values, seen_rows = [], 0, 0
    while pos < end:
        try:
            header, pos = _struct(buf, pos)
        except (IndexError, ValueError) as err:
            raise _Slow(f"page header: {err}") from None
        size, v2 = header.get(3), header.get(8)
        if header.get(1) != 3 or type(v2) is not dict or type(size) is not int or header.get(2) != size:
            raise _Slow(f"page type {header.get(1)}")
        n, nulls, nrows, enc, def_len, rep_len = (v2.get(k, 0 if k > 4 else None) for k in range(1, 7))
        if any(type(x) is not int or x < 0 for x in (n, nulls, nrows, enc, def_len, rep_len)) \
                or enc != 0 or nulls != 0 or size != def_len + rep_len + 4 * n:
            raise _Slow(f"page encoding={enc} nulls={nulls} values={n} size={size}")
        levels = def_len + rep_len
        segments.append((pos + levels, 4 * n))
        pos, values, seen_rows = pos + size, values + n, seen_rows + nrows
    if pos != end or values != rows * dim or seen_rows != rows:
        raise _Slow(f"pages hold {values} values / {seen_rows} rows, not {rows} x {dim}")
    return segments


def _to_matrix(arr: pa.Array) -> np.ndarray:
    dim = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else None
    if dim is None:
        lengths = pc.list_value_length(arr)
        dim = pc.max(lengths).as_py() or 0
        if len(arr) and pc.min(lengths).as_py() != dim:
            raise ValueError("embeddings of different lengths")
    if arr.null_count or arr.flatten().null_count:
        raise ValueError("null embeddings or null values inside them")
    return arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(len(arr), dim)


def _read_slow(path: Path, pf: pq.ParquetFile, groups: list[int], column: str, rows: int) -> np.ndarray:
    try:
        col = pf.read_row_groups(groups, columns=[column]).column(0)
        got = _to_matrix(pa.concat_arrays(col.chunks) if col.num_chunks else pa.array([], col.type))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise VectorReadError(f"{path}: cannot read column {column!r}: {err}") from err
    if len(got) != rows:
        raise VectorReadError(f"{path}: {len(got)} rows in column {column!r}, the footer says {rows}")
    return got


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise VectorReadError(f"{path}: not a readable Parquet file: {err}") from err


def read_matrix(paths: str | os.PathLike | Sequence[str | os.PathLike], column: str = "emb",
                row_groups: Sequence[int] | Sequence[Sequence[int] | None] | None = None) -> np.ndarray:
    """`column` of one file or several (concatenated in order) as one [n, dim] float32 array.

    `row_groups`: for one path, a list of row-group indices; for a list of paths, one such
    list (or None: all) per file."""
    single = isinstance(paths, (str, os.PathLike))
    files = [storage.path(paths)] if single else [storage.path(p) for p in paths]
    selections = [row_groups] if single else list(row_groups or [None] * len(files))
    if len(selections) != len(files):
        raise ValueError(f"row_groups has {len(selections)} entries for {len(files)} files")
    opened, dims = [], set()
    for path, sel in zip(files, selections):
        pf = _open(path)
        if column not in pf.schema_arrow.names:
            raise VectorReadError(f"{path}: no column {column!r} (has {', '.join(pf.schema_arrow.names)})")
        groups = list(range(pf.num_row_groups)) if sel is None else [int(g) for g in sel]
        if any(not 0 <= g < pf.num_row_groups for g in groups):
            raise VectorReadError(f"{path}: row groups {groups} out of range 0..{pf.num_row_groups - 1}")
        kind, rows = pf.schema_arrow.field(column).type, sum(pf.metadata.row_group(g).num_rows for g in groups)
        pre = None if pa.types.is_fixed_size_list(kind) else _read_slow(path, pf, groups, column, rows)
        if pre is None or len(pre):  # pyarrow tells the dim of a variable-size list
            dims.add(kind.list_size if pre is None else pre.shape[1])
        opened.append((path, pf, groups, pre))
    if len(dims) > 1:
        raise VectorReadError(f"{column!r} has different dims across files: {sorted(dims)}")
    dim = dims.pop() if dims else 0
    out = np.empty((sum(pf.metadata.row_group(g).num_rows for _, pf, gs, _ in opened for g in gs), dim),
                   dtype=np.float32)
    at = 0
    for path, pf, groups, pre in opened:
        if pre is not None:
            READ_PATHS["fallback: not a fixed-size list"] += len(groups)
            out[at:at + len(pre)] = pre
            at += len(pre)
        else:
            at = _read_file(path, pf, groups, column, out, at)
    return out


def _read_file(path: Path, pf: pq.ParquetFile, groups: list[int], column: str, out: np.ndarray, at: int) -> int:
    """Reads `groups` of one file into out[at:], each chunk fast or by pyarrow; returns the next row."""
    dim, plans, slow = out.shape[1], [], []
    with _mapped(path) as (fh, buf):
        try:
            leaf, reason = _fast_leaf(pf, column), ""
        except _Slow as why:
            leaf, reason = None, str(why)
        for g in groups:
            rg = pf.metadata.row_group(g)
            try:
                if leaf is None:
                    raise _Slow(reason)
                plans.append((at, _plan_chunk(buf, rg.column(leaf), rg.num_rows, dim)))
                READ_PATHS["fast"] += 1
            except _Slow as why:
                READ_PATHS[f"fallback: {why}"] += 1
                slow.append((at, rg.num_rows, g))
            at += rg.num_rows
        with memoryview(out.reshape(-1)).cast("B") as flat:
            for row, segments in plans:
                dst = row * dim * 4
                for offset, nbytes in segments:
                    fh.seek(offset)
                    while nbytes:
                        got = fh.readinto(flat[dst:dst + nbytes])
                        if not got:
                            raise VectorReadError(f"{path}: truncated at byte {fh.tell()}")
                        dst, nbytes = dst + got, nbytes - got
    if slow:
        got = _read_slow(path, pf, [g for _, _, g in slow], column, sum(n for _, n, _ in slow))
        src = 0
        for row, n, _ in slow:
            out[row:row + n] = got[src:src + n]
            src += n
    return at


@contextmanager
def _mapped(path: Path):
    """The file as a reader and a buffer of its bytes: a memory map of a local file; an object in
    S3 is fetched whole, in one GET (a part is one shard's vectors)."""
    if storage.is_object(path):
        data = path.read_bytes()
        yield io.BytesIO(data), data
        return
    with open(path, "rb", buffering=0) as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        yield fh, buf


def row_groups_where(path: str | os.PathLike, column: str, value) -> list[int]:
    """Row groups of `path` whose `column` is all `value`: statistics min == max == value, or
    (no statistics) read to decide. A group mixing `value` with others raises: the file is
    not laid out one value per row group, and no choice of whole groups would be right."""
    path = storage.path(path)
    pf = _open(path)
    leaf = next((i for i in range(pf.metadata.num_columns) if pf.schema.column(i).path == column), None)
    if leaf is None:
        raise VectorReadError(f"{path}: no flat column {column!r}")
    picked = []
    for g in range(pf.num_row_groups):
        stats = pf.metadata.row_group(g).column(leaf).statistics
        if stats is not None and stats.has_min_max and stats.null_count == 0:
            if stats.min == stats.max == value:
                picked.append(g)
                continue
            if value < stats.min or value > stats.max:
                continue
        values = pf.read_row_group(g, columns=[column]).column(0)
        hits = pc.sum(pc.equal(values, pa.scalar(value, values.type))).as_py() or 0
        if hits and hits == len(values):
            picked.append(g)
        elif hits:
            raise VectorReadError(f"{path}: row group {g} mixes {column}={value!r} with other values")
    return picked
