"""Splits: the assignment's properties (hypothesis), its tolerance, and the `just split` command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lake import atomic, catalog, paths, splits
from lake.cli import run_main
from lake.schemas import tracks_table
from lake.split_assign import SPLIT_NAMES, assign

RATIOS = [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.5, 0.5, 0.0), (0.6, 0.2, 0.2), (1 / 3, 1 / 3, 1 / 3), (1.0, 0.0, 0.0)]


@st.composite
def structures(draw):
    """Random tracks: labels, a group column with NULLs, a few identical-audio copies, ratios."""
    n = draw(st.integers(1, 150))
    n_groups = draw(st.integers(1, 12))
    group = st.one_of(st.none(), st.integers(0, n_groups - 1).map(lambda g: f"g{g}"))
    groups = draw(st.lists(group, min_size=n, max_size=n))
    labels = draw(st.lists(st.sampled_from(["rock", "folk", "jazz", None]), min_size=n, max_size=n))
    shas = draw(st.lists(st.integers(0, 3 * n), min_size=n, max_size=n))
    ids = [f"t{i:04d}" for i in draw(st.permutations(range(n)))]
    return ids, labels, [groups, [f"h{s}" for s in shas]], draw(st.sampled_from(RATIOS))


def dominant(units: np.ndarray, labels: list) -> dict[int, object]:
    """Each unit's most frequent stratum, ties to the smallest name (independent re-statement)."""
    rows: dict[int, Counter] = defaultdict(Counter)
    for u, label in zip(units, labels):
        rows[int(u)]["\0none" if label is None else label] += 1
    return {u: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for u, c in rows.items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures(), st.integers(0, 2**32 - 1))
def test_groups_never_straddle_splits_and_sizes_stay_within_the_tolerance(structure, seed):
    ids, labels, links, ratios = structure
    result = assign(ids, labels, links, ratios, seed)
    for column in links:
        splits_of: dict[str, set] = defaultdict(set)
        for value, split in zip(column, result.split):
            if value is not None:
                splits_of[value].add(split)
        assert all(len(s) == 1 for s in splits_of.values()), "a group value is in two splits"
    n = len(ids)
    for name, ratio in zip(SPLIT_NAMES, ratios):
        assert abs((result.split == name).sum() - ratio * n) <= result.bound_rows() + 1e-9
        if ratio == 0:
            assert (result.split == name).sum() == 0
    stratum_of_unit = dominant(result.unit, labels)
    row_stratum = np.array([stratum_of_unit[int(u)] for u in result.unit], dtype=object)
    for stratum in set(row_stratum):
        in_stratum = row_stratum == stratum
        for name, ratio in zip(SPLIT_NAMES, ratios):
            deviation = abs((result.split[in_stratum] == name).sum() - ratio * in_stratum.sum())
            assert deviation <= result.stratum_bound_rows() + 1e-9


@settings(max_examples=40, deadline=None)
@given(structures(), st.integers(0, 2**32 - 1), st.randoms(use_true_random=False))
def test_the_same_seed_gives_the_same_split_whatever_the_row_order(structure, seed, rnd):
    ids, labels, links, ratios = structure
    first = dict(zip(ids, assign(ids, labels, links, ratios, seed).split))
    order = list(range(len(ids)))
    rnd.shuffle(order)
    again = assign([ids[i] for i in order], [labels[i] for i in order],
                   [[column[i] for i in order] for column in links], ratios, seed)
    assert dict(zip([ids[i] for i in order], again.split)) == first


@settings(max_examples=40, deadline=None)
@given(structures(), st.integers(0, 2**32 - 1))
def test_different_seeds_give_different_splits(structure, seed):
    ids, labels, links, ratios = structure
    result = assign(ids, labels, links, ratios, seed)
    # Only a split with room for choice can differ: enough units, and more than one split used.
    assume(len(result.unit_sizes) >= 20 and sum(r > 0 for r in ratios) > 1)
    others = [assign(ids, labels, links, ratios, seed + k).split for k in (1, 2, 3)]
    assert any((other != result.split).any() for other in others)


def test_without_groups_every_split_and_stratum_is_within_a_row_or_two():
    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b", "c", "d", "e", "f", "g"], 1000).tolist()
    result = assign([f"t{i}" for i in range(1000)], labels, [], (0.8, 0.1, 0.1), 42)
    assert result.bound_rows() == pytest.approx(4 / 3)
    assert [(result.split == s).sum() for s in SPLIT_NAMES] == [800, 100, 100]
    for label in set(labels):
        rows = np.array(labels) == label
        for name, ratio in zip(SPLIT_NAMES, (0.8, 0.1, 0.1)):
            assert abs((result.split[rows] == name).sum() - ratio * rows.sum()) < 2


def test_small_strata_do_not_all_round_to_train():
    # 40 strata of 3 tracks: each alone would give val and test 0.3 of a track
    labels = [f"l{i // 3}" for i in range(120)]
    result = assign([f"t{i}" for i in range(120)], labels, [], (0.8, 0.1, 0.1), 0)
    assert [(result.split == s).sum() for s in SPLIT_NAMES] == [96, 12, 12]


# ---- the command ---------------------------------------------------------------------------

def write_tracks(dataset: str, rows: list[dict]) -> None:
    full = [{"dataset": dataset, "shard": "s.tar", "key": r["track_id"], "offset": 512, "nbytes": 10,
             "format": "wav", "sha256": f"sha-{r['track_id']}", "duration_s": 1.0, "sample_rate": 16000,
             "channels": 1, "source": "test", **r} for r in rows]
    atomic.write_parquet(tracks_table(full), paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet")


def corpus(n: int = 200) -> list[dict]:
    rng = np.random.default_rng(1)
    return [{"track_id": f"x{i:04d}", "label": ["rock", "folk", "jazz", "pop"][i % 4],
             "culture": ["west", "raga"][int(rng.integers(2))],
             "speaker_id": f"spk{int(rng.integers(12))}" if i % 3 else None} for i in range(n)]


def split_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        run_main(splits.main, ["dataset=c", *args])
    return exit_info.value.code


def read_split(name: str) -> dict[str, str]:
    table = pq.read_table(splits.part_path("c", name))
    return dict(zip(table.column("track_id").to_pylist(), table.column("split").to_pylist()))


def test_split_command_writes_a_named_split_with_its_parameters(capsys):
    write_tracks("c", corpus())
    assert split_cli("stratify=label,culture", "group=speaker_id") == 0
    out = capsys.readouterr().out
    assert "rock · west" in out and "wrote" in out and "tolerance" in out
    part = splits.part_path("c", "default")
    params = json.loads(atomic.read_parquet_metadata(part)["audiolake.split.params"])
    assert params["seed"] == 42 and params["stratify"] == ["label", "culture"] and params["group"] == ["speaker_id"]
    con = catalog.connect()
    assert con.execute("SELECT count(*), count(DISTINCT track_id) FROM splits WHERE split_name = 'default'"
                       ).fetchone() == (200, 200)
    # every speaker in one split, and the report says so
    spread = con.execute("SELECT count(*) FROM (SELECT speaker_id FROM splits JOIN tracks USING (dataset, track_id) "
                         "WHERE speaker_id IS NOT NULL GROUP BY 1 HAVING count(DISTINCT splits.split) > 1)").fetchone()
    assert spread == (0,)
    report = json.loads((paths.reports_dir("c") / "leakage-default.json").read_text())
    assert not report["leakage"] and [c["status"] for c in report["checks"]] == ["clean", "clean", "skipped"]


def test_named_splits_live_side_by_side_and_a_rerun_with_new_parameters_replaces_and_says_so(capsys):
    write_tracks("c", corpus())
    assert split_cli("name=a", "seed=1") == 0
    assert split_cli("name=b", "seed=2", "where=label <> 'pop'") == 0
    first = read_split("a")
    assert len(first) == 200 and len(read_split("b")) == 150
    assert split_cli("name=a", "seed=1") == 0
    assert read_split("a") == first  # deterministic
    assert "same parameters; 0 tracks moved" in capsys.readouterr().out
    assert split_cli("name=a", "seed=7") == 0
    out = capsys.readouterr().out
    assert "parameters changed: seed 1 → 7" in out and read_split("a") != first
    assert catalog.connect().execute("SELECT count(DISTINCT split_name) FROM splits").fetchone() == (2,)


def test_identical_audio_is_kept_in_one_split():
    rows = corpus(60)
    for r in rows[:20]:
        r["sha256"] = "same-audio"  # 20 copies of one clip
    write_tracks("c", rows)
    assert split_cli("stratify=label") == 0
    assert len({read_split("default")[r["track_id"]] for r in rows[:20]}) == 1


def test_from_source_adopts_the_split_column(capsys):
    rows = corpus(6)
    for r, s in zip(rows, ["train", "TRAIN", "validation", "val", "test", "train"]):
        r["split"] = s
    write_tracks("c", rows)
    assert split_cli("name=source", "from_source=true") == 0
    assert list(read_split("source").values()) == ["train", "train", "val", "val", "test", "train"]
    rows[2]["split"] = "dev"
    write_tracks("c", rows)
    assert split_cli("name=source2", "from_source=true") == 1
    assert "'dev'" in capsys.readouterr().err and not splits.part_path("c", "source2").exists()


def test_a_leaking_split_is_not_written_unless_allowed(capsys):
    rows = corpus(6)
    for r, s in zip(rows, ["train", "train", "train", "val", "test", "train"]):
        r["split"], r["speaker_id"] = s, "one-speaker"
    write_tracks("c", rows)
    assert split_cli("from_source=true", "group=speaker_id") == 1
    err = capsys.readouterr().err
    assert "leakage found" in err and "not written" in err
    assert not splits.part_path("c", "default").exists()
    assert (paths.reports_dir("c") / "leakage-default.md").is_file()
    assert split_cli("from_source=true", "group=speaker_id", "allow_leakage=true") == 0
    assert splits.part_path("c", "default").exists()


def test_a_missing_column_is_a_one_line_error():
    write_tracks("c", corpus(10))
    proc = subprocess.run([sys.executable, "-m", "lake.splits", "dataset=c", "stratify=nope"],
                          capture_output=True, check=False, text=True, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "stratify=nope: not a column of tracks" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["ratios=0.8,0.1"], "give 3 numbers"),
    (["ratios=0.8,0.3,0.1"], "summing to 1"),
    (["group=nope"], "group=nope: not a column"),
    (["where=nosuchcolumn > 1"], "where="),
    (["threshold=2"], "threshold=2"),
])
def test_bad_arguments_are_named(args, message, capsys):
    write_tracks("c", corpus(10))
    assert split_cli(*args) in (1, 2)
    assert message in capsys.readouterr().err
