"""Names and numbers that used to pass the checks and break the lake later (issue 8, items 3 and 5)."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from lake import paths
from lake.cli import UsageError, parse_config
from lake.errors import one_line


@pytest.mark.parametrize("name", ["nl\n", "tab\t", "a" * 101, "", "-lead", "dot.ted", "sl/ash"])
def test_names_are_checked_with_a_full_match_and_a_length_limit(name):
    with pytest.raises(ValueError, match="dataset="):
        paths.check_name("dataset", name)


def test_a_name_at_the_limit_is_fine():
    assert paths.check_name("dataset", "a" * paths.MAX_NAME) == "a" * paths.MAX_NAME


@dataclass
class _Numbers:
    lr: float = 0.1
    hidden: int = 16


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_non_finite_numbers_are_refused_by_name(raw):
    with pytest.raises(UsageError, match=f"lr={raw!r}: expected a finite number"):
        parse_config(_Numbers, {"lr": raw})


def test_a_newline_dataset_is_refused_before_anything_is_written(tmp_path, lake_root):
    done = subprocess.run([sys.executable, "-m", "ingest", "dataset=nl\n", "source=demo", "n=8"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "is not a valid name" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (lake_root / "tables").exists()


def test_one_line_keeps_the_root_cause_and_the_limit():
    try:
        try:
            raise OSError("disk\nfull")
        except OSError as inner:
            raise RuntimeError("An error occurred while generating the dataset") from inner
    except RuntimeError as err:
        text = one_line(err, 80)
    assert "\n" not in text and "OSError: disk full" in text and len(text) <= 80


@pytest.mark.parametrize("where", ["1=1) OR (1=1", "true UNION SELECT * FROM tracks", "a = 1; DROP TABLE t",
                                   "label = 'x' ) OR ( true"])
def test_where_cannot_escape_the_dataset_and_split_filter(where):
    from heads.data import Selection
    from lake.splits import SplitConfig

    with pytest.raises(UsageError, match="is not one SQL expression"):
        parse_config(SplitConfig, {"dataset": "demo", "where": where})
    with pytest.raises(ValueError, match="is not one SQL expression"):
        Selection(dataset="demo", backbone="logmel", target="label", where=where)


def test_where_selects_within_the_dataset_only(lake_root):
    import duckdb

    from lake import queries

    con = duckdb.connect()
    con.execute("CREATE TABLE tracks AS SELECT * FROM (VALUES ('a', 't1', 'x'), ('b', 't2', 'y')) t(dataset, track_id, label)")
    sql = f"SELECT track_id FROM tracks WHERE dataset = 'a' AND {queries.predicate('label IS NOT NULL -- all')}"
    assert con.execute(sql).fetchall() == [("t1",)]
