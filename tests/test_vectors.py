"""lake.vectors: the page-walking fast reader agrees bit for bit with pyarrow, falls back when
a file is not laid out for it, and fails with the file's name on damage."""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import vectors
from lake.vectors import (READ_PATHS, VECTOR_WRITE_OPTIONS, VectorReadError, read_matrix,
                          row_groups_where, vector_field, vector_type, vector_write_options,
                          write_vector_parquet)


def matrix(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    if rows and dim:  # awkward values must survive bit for bit
        m.flat[:4] = [np.nan, -0.0, np.inf, np.float32(1e-45)][: m.size]
    return m


def vec_table(m: np.ndarray, layer: str = "l0", nullable: bool = False) -> pa.Table:
    dim = m.shape[1]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), dim)
    schema = pa.schema([pa.field("clip", pa.string()), pa.field("layer", pa.string()),
                        vector_field(dim) if not nullable else pa.field("emb", pa.list_(pa.float32(), dim))])
    clips = pa.array([f"c{i}" for i in range(len(m))], pa.string())
    return pa.table([clips, pa.array([layer] * len(m), pa.string()), emb], schema=schema)


def reference(path: Path | list[Path]) -> np.ndarray:
    paths = [path] if isinstance(path, Path) else path
    parts = [pq.read_table(p, columns=["emb"]).column("emb").combine_chunks() for p in paths]
    dims = [p.type.list_size for p in parts]
    return np.concatenate([p.flatten().to_numpy().reshape(len(p), d) for p, d in zip(parts, dims)])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and a.tobytes() == b.tobytes()


def write(path: Path, m: np.ndarray, **options) -> Path:
    table = vec_table(m)
    opts = {**vector_write_options(table.schema), **options}
    pq.write_table(table, path, **opts)
    return path


def paths_used() -> dict[str, int]:
    return {("fast" if k == "fast" else "fallback"): v for k, v in READ_PATHS.items()}


@pytest.fixture(autouse=True)
def fresh_counter():
    READ_PATHS.clear()
    yield


def test_types_and_options():
    assert vector_type(768) == pa.list_(pa.field("element", pa.float32(), nullable=False), 768)
    assert not vector_field(3).nullable and vector_field(3).name == "emb"
    assert VECTOR_WRITE_OPTIONS["compression"] == "none"
    assert VECTOR_WRITE_OPTIONS["data_page_version"] == "2.0"
    assert vector_write_options(vec_table(matrix(2, 3)).schema)["use_dictionary"] == ["clip", "layer"]


@pytest.mark.parametrize("dim", [1, 7, 768])
@pytest.mark.parametrize("rows,row_group_size,page_size", [(0, 100, None), (1, 10, None), (1000, 128, None),
                                                            (1000, 1000, 512), (333, 50, 4096)])
def test_fast_path_equals_pyarrow(tmp_path, dim, rows, row_group_size, page_size):
    m = matrix(rows, dim, seed=dim)
    extra = {"data_page_size": page_size, "write_batch_size": 16} if page_size else {}
    path = write(tmp_path / "v.parquet", m, row_group_size=row_group_size, **extra)
    meta = pq.ParquetFile(path).metadata
    got = read_matrix(path)
    assert same_bits(got, m) and same_bits(got, reference(path).reshape(rows, dim))
    if rows:
        assert paths_used() == {"fast": meta.num_row_groups}
    if page_size and rows:  # the point of page_size: many pages per column chunk
        group_bytes = meta.row_group(0).num_rows * dim * 4
        assert _pages(path, 0) >= min(4, group_bytes // page_size)


def _pages(path: Path, group: int) -> int:
    pf = pq.ParquetFile(path)
    leaf = vectors._fast_leaf(pf, "emb")
    cc = pf.metadata.row_group(group).column(leaf)
    with open(path, "rb") as fh:
        data = memoryview(fh.read())
    dim = pf.schema_arrow.field("emb").type.list_size
    return len(vectors._plan_chunk(data, cc, pf.metadata.row_group(group).num_rows, dim))


def test_multiple_files_and_row_groups(tmp_path):
    ms = [matrix(n, 16, seed=n) for n in (50, 0, 120, 7)]
    paths = [write(tmp_path / f"f{i}.parquet", m, row_group_size=30) for i, m in enumerate(ms)]
    assert same_bits(read_matrix(paths), np.concatenate(ms))
    assert same_bits(read_matrix(paths), reference(paths))
    # per file: group 1 of f0 (rows 30..50); groups 3 then 0 of f2 (rows 90..120, 0..30); all of f3
    got = read_matrix([paths[0], paths[2], paths[3]], row_groups=[[1], [3, 0], None])
    assert same_bits(got, np.concatenate([ms[0][30:50], ms[2][90:120], ms[2][0:30], ms[3]]))
    assert same_bits(read_matrix(paths[2], row_groups=[2]), ms[2][60:90])
    assert read_matrix(paths[2], row_groups=[]).shape == (0, 16)
    with pytest.raises(VectorReadError, match="out of range"):
        read_matrix(paths[0], row_groups=[5])
    with pytest.raises(ValueError, match="entries"):
        read_matrix(paths, row_groups=[[0]])


@pytest.mark.parametrize("kind", ["zstd", "v1", "nullable", "dictionary", "byte_stream_split", "float64",
                                  "variable_list", "no_arrow_schema"])
def test_fallback_is_taken_and_correct(tmp_path, kind):
    m = matrix(300, 9, seed=3)
    path = tmp_path / f"{kind}.parquet"
    table = vec_table(m)
    opts = {**vector_write_options(table.schema), "row_group_size": 100}
    if kind == "zstd":
        opts["compression"] = "zstd"
    elif kind == "v1":
        opts["data_page_version"] = "1.0"
    elif kind == "nullable":
        table = vec_table(m, nullable=True)
    elif kind == "dictionary":
        opts["use_dictionary"] = True
    elif kind == "byte_stream_split":
        opts["use_byte_stream_split"] = ["emb.list.element"]
    elif kind == "float64":
        table = table.set_column(2, "emb", table.column("emb").cast(pa.list_(pa.float64(), 9)))
    elif kind == "variable_list":
        table = table.set_column(2, "emb", table.column("emb").cast(pa.list_(pa.float32())))
    elif kind == "no_arrow_schema":
        opts["store_schema"] = False
    pq.write_table(table, path, **opts)
    got = read_matrix(path)
    assert got.dtype == np.float32 and got.shape == m.shape
    assert got.tobytes() == m.tobytes()
    assert paths_used() == {"fallback": 3}, READ_PATHS


def test_fast_and_fallback_files_together(tmp_path):
    """A file that does not qualify is read by pyarrow; the others still go fast."""
    ms = [matrix(40, 5, seed=i) for i in range(2)]
    path = write(tmp_path / "fast.parquet", ms[0])
    slow = tmp_path / "slow.parquet"
    pq.write_table(vec_table(ms[1]), slow, compression="zstd")
    got = read_matrix([path, slow, path])
    assert same_bits(got, np.concatenate([ms[0], ms[1], ms[0]]))
    assert paths_used() == {"fast": 2, "fallback": 1}


def test_file_written_by_duckdb(tmp_path):
    """DuckDB's COPY writes FLOAT[dim] as a plain list without an Arrow schema: pyarrow path."""
    m = matrix(50, 7, seed=5)
    src = write_vector_parquet(vec_table(m), tmp_path / "src.parquet")
    out = tmp_path / "duck.parquet"
    duckdb.execute(f"COPY (SELECT CAST(emb AS FLOAT[7]) AS emb FROM read_parquet('{src}') ORDER BY clip[2:]::INT) "
                   f"TO '{out}' (FORMAT parquet)")
    assert same_bits(read_matrix(out), m)
    assert same_bits(read_matrix([src, out]), np.concatenate([m, m]))
    assert paths_used() == {"fast": 1, "fallback": 2}


def test_nulls_are_an_error(tmp_path):
    emb = pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float32(), 2))
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"emb": emb}), path)
    with pytest.raises(VectorReadError, match="nulls.parquet"):
        read_matrix(path)
    with pytest.raises(ValueError, match="null"):
        write_vector_parquet(pa.table({"emb": emb}), tmp_path / "w.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nulls.parquet"]  # no target, no temp file
    with pytest.raises(ValueError, match="fixed-size list"):
        write_vector_parquet(pa.table({"emb": pa.array([[1.0]], pa.list_(pa.float32()))}), tmp_path / "w.parquet")


def test_write_vector_parquet_layers_and_row_groups_where(tmp_path):
    layers = {f"layer{i}": matrix(70 + i, 12, seed=i) for i in range(4)}
    path = write_vector_parquet([vec_table(m, layer=name) for name, m in layers.items()],
                                tmp_path / "emb.parquet", metadata={"model": "demo"})
    pf = pq.ParquetFile(path)
    assert pf.num_row_groups == 4
    assert pf.schema_arrow.field("emb") == vector_field(12)
    assert pf.schema_arrow.metadata[b"model"] == b"demo"
    assert not list(tmp_path.glob(".*.tmp"))
    for i, (name, m) in enumerate(layers.items()):
        groups = row_groups_where(path, "layer", name)
        assert groups == [i]
        assert same_bits(read_matrix(path, row_groups=groups), m)
    assert row_groups_where(path, "layer", "nope") == []
    assert paths_used() == {"fast": 4}
    whole = read_matrix(path)
    assert same_bits(whole, np.concatenate(list(layers.values())))


def test_row_groups_where_without_statistics_and_mixed(tmp_path):
    t = pa.concat_tables([vec_table(matrix(10, 3), layer="a"), vec_table(matrix(10, 3), layer="b")])
    path = tmp_path / "nostats.parquet"
    pq.write_table(t, path, row_group_size=10, write_statistics=False)
    assert pq.ParquetFile(path).metadata.row_group(0).column(1).statistics is None
    assert row_groups_where(path, "layer", "b") == [1]
    mixed = tmp_path / "mixed.parquet"
    pq.write_table(t, mixed, row_group_size=15)
    for layer in ("a", "b"):  # group 0 holds 10 a's and 5 b's: neither answer would be right
        with pytest.raises(VectorReadError, match="row group 0 mixes"):
            row_groups_where(mixed, "layer", layer)
    assert row_groups_where(mixed, "layer", "c") == []


def test_duckdb_reads_the_same_file(tmp_path):
    dim = 7
    m = matrix(200, dim, seed=9)
    m.flat[:4] = 1.0  # no NaN/inf here: cosine similarity must be comparable
    path = write_vector_parquet(vec_table(m), tmp_path / "v.parquet")
    con = duckdb.connect()
    assert con.execute(f"SELECT typeof(emb) FROM read_parquet('{path}') LIMIT 1").fetchone()[0] == "FLOAT[]"
    con.execute(f"CREATE VIEW v AS SELECT clip, CAST(emb AS FLOAT[{dim}]) AS emb FROM read_parquet('{path}')")
    q = np.arange(dim, dtype=np.float32) - 3
    rows = con.execute(f"SELECT clip, array_cosine_similarity(emb, ?::FLOAT[{dim}]) FROM v ORDER BY clip",
                       [q.tolist()]).fetchall()
    sims = dict(rows)
    mat = read_matrix(path)
    want = (mat @ q) / (np.linalg.norm(mat, axis=1) * np.linalg.norm(q))
    for i in range(len(m)):
        assert sims[f"c{i}"] == pytest.approx(float(want[i]), abs=1e-5)
    back = con.execute(f"SELECT CAST(emb AS FLOAT[{dim}]) AS emb FROM read_parquet('{path}', file_row_number=true) "
                       "ORDER BY file_row_number").fetchnumpy()["emb"]
    back = np.stack(list(back)).astype(np.float32)
    assert same_bits(back.reshape(m.shape), mat)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = write(tmp_path / "cut.parquet", matrix(100, 8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VectorReadError, match="cut.parquet"):
        read_matrix(path)
    path.write_bytes(b"")
    with pytest.raises(VectorReadError, match="cut.parquet"):
        read_matrix(path)


def test_corrupt_page_header_is_a_clear_error(tmp_path):
    path = write(tmp_path / "bad.parquet", matrix(100, 8), row_group_size=50)
    pf = pq.ParquetFile(path)
    cc = pf.metadata.row_group(1).column(2)
    data = bytearray(path.read_bytes())
    data[cc.data_page_offset: cc.data_page_offset + 24] = b"\xff" * 24  # smash a page header
    path.write_bytes(bytes(data))
    with pytest.raises(VectorReadError, match="bad.parquet"):
        read_matrix(path)
    assert READ_PATHS["fast"] == 1  # group 0 was fine; group 1 went to pyarrow, which refused it


def test_lying_metadata_is_not_trusted(tmp_path):
    """A header whose sizes disagree with the chunk must not be read as values."""
    m = matrix(64, 4)
    path = write(tmp_path / "lie.parquet", m)
    pf = pq.ParquetFile(path)
    cc = pf.metadata.row_group(0).column(2)
    mm = memoryview(path.read_bytes())
    with pytest.raises(vectors._Slow):
        vectors._plan_chunk(mm, cc, 65, 4)  # one row more than the pages hold
    with pytest.raises(vectors._Slow):
        vectors._plan_chunk(mm[: cc.data_page_offset + 10], cc, 64, 4)  # chunk past the end


def test_damaged_page_headers_never_give_wrong_numbers(tmp_path):
    """Random bytes smashed into page headers: a clear error, or the right matrix; nothing else."""
    m = matrix(200, 6, seed=1)
    path = write(tmp_path / "fz.parquet", m, row_group_size=100, data_page_size=512, write_batch_size=16)
    orig = path.read_bytes()
    cc = pq.ParquetFile(path).metadata.row_group(0).column(2)
    segments = vectors._plan_chunk(memoryview(orig), cc, 100, 6)
    starts = [cc.data_page_offset] + [offset + nbytes for offset, nbytes in segments[:-1]]
    rng = np.random.default_rng(0)
    damaged = tmp_path / "damaged.parquet"
    outcomes = {"error": 0, "right": 0}
    for _ in range(300):
        data = bytearray(orig)
        start = starts[rng.integers(len(starts))]
        for _ in range(rng.integers(1, 3)):
            data[start + rng.integers(0, 30)] = rng.integers(0, 256)
        damaged.write_bytes(bytes(data))
        try:
            got = read_matrix(damaged)
        except VectorReadError as err:
            assert "damaged.parquet" in str(err)
            outcomes["error"] += 1
        else:
            assert same_bits(got, m)
            outcomes["right"] += 1
    assert outcomes["error"] and outcomes["right"]
