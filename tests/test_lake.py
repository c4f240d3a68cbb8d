"""The lake's own parts: atomic writes, catalog views, the sql and tables commands, CLI parsing."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import atomic, catalog, paths, queries, sql, tables
from lake.cli import UsageError, parse_config, split_args
from lake.schemas import TRACKS, tracks_table


def write_tracks(dataset: str, rows: list[dict]) -> Path:
    full = [{"dataset": dataset, "shard": "s.tar", "key": r["track_id"], "offset": 512, "nbytes": 10,
             "format": "wav", "sha256": "0" * 64, "duration_s": 1.0, "sample_rate": 16000,
             "channels": 1, "source": "test", **r} for r in rows]
    part = paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet"
    return atomic.write_parquet(tracks_table(full), part)


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "t.parquet"
    atomic.write_parquet(pa.table({"a": [1]}), target)
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert pq.read_table(target).to_pylist() == [{"a": 1}]
    assert os.listdir(tmp_path) == ["t.parquet"], "no temporary file left behind"


def test_views_union_partitions_by_name_and_keep_extra_columns():
    write_tracks("a", [{"track_id": "1", "label": "x", "bpm": 120}])
    write_tracks("b", [{"track_id": "2", "label": "y", "terms": ["ney"]}])
    con = catalog.connect()
    rows = con.sql("SELECT dataset, track_id, label, bpm, terms FROM tracks ORDER BY 1").fetchall()
    assert rows == [("a", "1", "x", 120, None), ("b", "2", "y", None, ["ney"])]


def test_partition_filter_skips_files():
    write_tracks("a", [{"track_id": "1"}])
    write_tracks("b", [{"track_id": "2"}])
    plan = catalog.connect().sql("EXPLAIN SELECT * FROM tracks WHERE dataset = 'a'").fetchall()
    assert "Scanning Files: 1/2" in "".join(str(cell) for row in plan for cell in row)


def test_a_table_not_yet_written_is_an_empty_typed_view():
    con = catalog.connect()
    assert con.sql("SELECT count(*) FROM tracks").fetchall() == [(0,)]
    described = dict(con.sql("DESCRIBE tracks").fetchall()[i][:2] for i in range(len(TRACKS)))
    assert described["terms"] == "VARCHAR[]" and described["offset"] == "BIGINT"


def test_catalog_file_serves_any_duckdb_client():
    write_tracks("a", [{"track_id": "1", "culture": "west"}])
    target = catalog.refresh()
    other = duckdb.connect(str(target), read_only=True)
    assert other.execute("SELECT culture FROM tracks").fetchall() == [("west",)]


def test_queries_bind_parameters_and_name_missing_ones():
    write_tracks("a", [{"track_id": "1", "label": "x"}, {"track_id": "2", "label": "y"}])
    con = catalog.connect()
    text = "-- purpose: rows of one label\n-- $label: the label\nSELECT track_id FROM tracks WHERE label = $label"
    assert queries.parameters(text) == ["label"]
    assert queries.run(con, text, {"label": "y"}).to_pylist() == [{"track_id": "2"}]
    with pytest.raises(KeyError, match=r"\$label"):
        queries.run(con, text, {})
    with pytest.raises(KeyError, match="no parameter"):
        queries.run(con, text, {"label": "y", "other": "1"})
    # Bound, not formatted: a quote in the value is data, not SQL.
    assert queries.run(con, text, {"label": "x' OR '1'='1"}).num_rows == 0


def test_sql_command_prints_a_table_and_exports(tmp_path, capsys):
    write_tracks("a", [{"track_id": "1", "culture": "west", "label": "rock"},
                       {"track_id": "2", "culture": "raga", "label": "folk"}])
    query = "SELECT culture, label, count(*) AS n FROM tracks WHERE dataset='a' GROUP BY ALL ORDER BY 1"
    assert sql.main([query]) == 0
    printed = capsys.readouterr().out
    assert "raga" in printed and "west" in printed and "2 rows" in printed

    sql.main([query, "format=csv", f"out={tmp_path / 'o.csv'}"])
    assert list(csv.DictReader(open(tmp_path / "o.csv")))[0] == {"culture": "raga", "label": "folk", "n": "1"}
    sql.main([query, f"out={tmp_path / 'o.json'}"])
    assert json.loads((tmp_path / "o.json").read_text())[1]["culture"] == "west"
    sql.main([query, "format=parquet", f"out={tmp_path / 'o.parquet'}"])
    assert pq.read_table(tmp_path / "o.parquet").num_rows == 2


def test_sql_command_runs_a_named_file_with_parameters(tmp_path, capsys):
    write_tracks("a", [{"track_id": "1", "label": "x"}])
    query = tmp_path / "by_label.sql"
    query.write_text("-- purpose: tracks of a label\nSELECT track_id FROM tracks WHERE label = $label\n")
    sql.main([f"file={query}", "label=x", "format=csv"])
    assert capsys.readouterr().out.splitlines() == ['"track_id"', '"1"']


def test_sql_errors_are_one_message_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sql.main(["SELECT nope FROM tracks"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_tables_reports_rows_partitions_files_bytes(capsys):
    write_tracks("a", [{"track_id": "1"}, {"track_id": "2"}])
    write_tracks("b", [{"track_id": "3"}])
    (stats,) = [s for s in catalog.table_stats() if s["table"] == "tracks"]
    assert (stats["rows"], stats["partitions"], stats["files"]) == (3, 2, 2) and stats["bytes"] > 0
    tables.main([])
    assert "tracks" in capsys.readouterr().out


@dataclass
class _Cfg:
    dataset: str
    ratio: float = 0.5
    layers: tuple[int, ...] = (1,)
    mode: Literal["a", "b"] = "a"
    strict: bool = False
    where: str | None = None


def test_cli_parsing_names_the_bad_key():
    cfg = parse_config(_Cfg, {"dataset": "d", "ratio": "0.25", "layers": "3,6,9", "strict": "true", "where": "none"})
    assert (cfg.ratio, cfg.layers, cfg.strict, cfg.where) == (0.25, (3, 6, 9), True, None)
    for pairs, needle in [({"datset": "d"}, "datset="), ({"dataset": "d", "ratio": "half"}, "ratio="),
                          ({"dataset": "d", "mode": "c"}, "mode="), ({"dataset": "d", "strict": "maybe"}, "strict="),
                          ({}, "missing dataset=")]:
        with pytest.raises(UsageError, match=needle):
            parse_config(_Cfg, pairs)
    assert split_args(["a=1", "SELECT x = 1"]) == ({"a": "1"}, ["SELECT x = 1"])


def test_names_that_become_directories_are_checked():
    with pytest.raises(ValueError, match="dataset="):
        paths.check_name("dataset", "../etc")


def test_decode_stops_at_max_seconds_for_every_decoder():
    from conftest import encode, tone
    from lake.audio import decode

    for fmt in ("wav", "flac", "mp3", "m4a"):
        data = encode(tone(seconds=3.0, rate=16000, channels=2), 16000, fmt)
        full, rate, _ = decode(data)
        head, _, _ = decode(data, max_seconds=1.0)
        assert rate == 16000 and full.shape[1] == 2
        assert len(full) >= 3 * 16000 - 2048, fmt
        assert len(head) == 16000, fmt
        np.testing.assert_allclose(head, full[:16000], atol=1e-6, err_msg=fmt)
