"""Weak interactions: deterministic, no repeated pairs, the culture preference and popularity
skew measurable in the output; imported logs checked against tracks and kept synthetic=false."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from lake import atomic, catalog, interactions, paths
from lake.schemas import INTERACTIONS, tracks_table

CULTURES = ("maqam", "raga", "west", "pentatonic")
LABELS = ("rock", "folk", "ambient", "electronic", "jazz")


def write_tracks(dataset: str, n_per_culture: int = 300, cultures=CULTURES) -> None:
    rows = [{"dataset": dataset, "track_id": f"{c or 'none'}_{i:04d}", "shard": "s.tar", "key": f"k{j}_{i}",
             "offset": 0, "nbytes": 1, "format": "wav", "sha256": f"{j}_{i}", "duration_s": 1.0,
             "sample_rate": 16000, "channels": 1, "source": "test", "culture": c, "label": LABELS[(i * 7 + j) % 5]}
            for j, c in enumerate(cultures) for i in range(n_per_culture)]
    atomic.write_parquet(tracks_table(rows), paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet")


@pytest.fixture
def rec() -> str:
    write_tracks("rec")
    return "rec"


def generate(**options) -> pl.DataFrame:
    args = [f"{k}={v}" for k, v in {"dataset": "rec", **options}.items()]
    assert interactions.main(args) == 0
    table = pq.read_table(interactions.part_path(options.get("dataset", "rec"), "synthetic"))
    assert table.schema.equals(INTERACTIONS)
    return pl.from_arrow(table)


def with_culture(frame: pl.DataFrame) -> pl.DataFrame:
    tracks = pl.from_arrow(catalog.connect().sql("SELECT track_id, culture, label FROM tracks").to_arrow_table())
    return frame.join(tracks, on="track_id", how="left").with_columns(
        pl.col("user_id").str.replace(r"-u\d+$", "").alias("group"))


def own_share(frame: pl.DataFrame) -> dict[str, float]:
    shares = with_culture(frame).group_by("group").agg((pl.col("culture") == pl.col("group")).mean())
    return dict(shares.iter_rows())


def test_same_seed_same_rows_other_seed_other_rows(rec):
    first = generate(seed=3)
    assert generate(seed=3).equals(first)
    assert not generate(seed=4).equals(first)


def test_shape_no_repeated_pairs_and_every_row_synthetic(rec):
    frame = generate(users_per_culture=10, tracks_per_user=40)
    assert frame.height == 4 * 10 * 40 and frame["user_id"].n_unique() == 40
    assert frame.select("user_id", "track_id").is_duplicated().sum() == 0
    assert frame["synthetic"].all() and (frame["dataset"] == "rec").all()
    assert (frame["weight"] > 0).all() and frame["ts"].null_count() == 0
    assert frame["ts"].dt.year().unique().to_list() == [2024]
    # the catalog sees the new table
    assert catalog.connect().execute("SELECT count(*) FROM interactions WHERE synthetic").fetchall() == [(1600,)]


def test_own_culture_share_follows_the_probability(rec):
    high = own_share(generate(own_culture_prob=0.8))
    low = own_share(generate(own_culture_prob=0.25))
    assert set(high) == set(CULTURES)
    for culture in CULTURES:
        # 20 users x 50 picks = 1000 Binomial draws per culture: sd ~0.013
        assert high[culture] == pytest.approx(0.8, abs=0.05)
        assert low[culture] == pytest.approx(0.25, abs=0.05)
        assert high[culture] > low[culture] + 0.4


def test_popular_tracks_get_a_clearly_larger_share(rec):
    frame = generate(popularity_alpha=1.0)
    counts = with_culture(frame).group_by("track_id").len()
    all_tracks = pl.DataFrame({"track_id": [f"{c}_{i:04d}" for c in CULTURES for i in range(300)]})
    per_track = np.sort(all_tracks.join(counts, on="track_id", how="left")["len"].fill_null(0).to_numpy())[::-1]
    tenth = len(per_track) // 10
    top, bottom = per_track[:tenth].sum(), per_track[-tenth:].sum()
    assert top > 5 * max(bottom, 1)
    flat = generate(popularity_alpha=0.0)
    flat_counts = np.sort(flat.group_by("track_id").len()["len"].to_numpy())[::-1]
    assert flat_counts[:tenth].sum() < top  # the skew comes from alpha


def test_users_lean_to_their_liked_labels(rec):
    def top_two_share(frame: pl.DataFrame) -> float:
        per_user = with_culture(frame).group_by("user_id", "label").len().sort("len", descending=True)
        return per_user.group_by("user_id").agg(pl.col("len").head(2).sum() / pl.col("len").sum())["len"].mean()

    # each user's two most picked of 5 labels: ~0.49 by chance here, ~0.67 with a 4x taste for two
    assert top_two_share(generate(genre_taste=2, taste_boost=4.0)) > top_two_share(generate(genre_taste=0)) + 0.1


def test_without_cultures_one_group_of_users(lake_root):
    write_tracks("plain", n_per_culture=200, cultures=(None,))
    frame = generate(dataset="plain", users_per_culture=5, tracks_per_user=20)
    assert frame["user_id"].str.starts_with("all-").all() and frame.height == 100


def test_bad_values_are_named(rec):
    with pytest.raises(interactions.UsageError, match="own_culture_prob=1.5"):
        interactions.main(["dataset=rec", "own_culture_prob=1.5"])
    with pytest.raises(interactions.UsageError, match="seed= generates"):
        interactions.main(["dataset=rec", "import=x.csv", "seed=1"])


def test_import_names_unknown_track_ids_and_fails(rec, tmp_path, capsys):
    log = tmp_path / "plays.csv"
    log.write_text("user_id,track_id,weight\nu1,maqam_0001,3\nu2,ghost_1,1\nu2,ghost_2,1\n")
    with pytest.raises(SystemExit) as exit_info:
        interactions.main(["dataset=rec", f"import={log}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "2 of 3 rows" in err and "ghost_1, ghost_2" in err and "allow_unknown=true" in err
    assert not interactions.part_path("rec", "import-plays").exists()
    assert interactions.main(["dataset=rec", f"import={log}", "allow_unknown=true"]) == 0
    assert pq.read_table(interactions.part_path("rec", "import-plays")).num_rows == 1
    assert "dropped 2 rows" in capsys.readouterr().out


def test_import_writes_real_rows_beside_the_synthetic_ones(rec, tmp_path):
    generate(users_per_culture=2, tracks_per_user=5)
    log = tmp_path / "listens.csv"
    log.write_text("user_id,track_id,ts\nalice,raga_0002,2023-05-01T12:00:00Z\nbob,west_0003,2023-05-02T08:30:00Z\n")
    assert interactions.main(["dataset=rec", f"import={log}"]) == 0
    rows = catalog.connect().execute(
        "SELECT user_id, track_id, weight, strftime(ts, '%Y-%m-%d %H:%M'), synthetic FROM interactions "
        "WHERE NOT synthetic ORDER BY 1").fetchall()
    assert rows == [("alice", "raga_0002", 1.0, "2023-05-01 12:00", False),
                    ("bob", "west_0003", 1.0, "2023-05-02 08:30", False)]
    assert catalog.connect().execute("SELECT count(*) FROM interactions WHERE synthetic").fetchall() == [(40,)]
    # regenerating replaces the synthetic part and leaves the import alone
    generate(users_per_culture=1, tracks_per_user=5)
    parts = sorted(p.name for p in paths.partition_dir("interactions", dataset="rec").glob("*.parquet"))
    assert parts == ["part-import-listens.parquet", "part-synthetic.parquet"]


def test_import_rejects_bad_rows_by_row_number(rec, tmp_path, capsys):
    log = tmp_path / "bad.csv"
    log.write_text("user_id,track_id,weight\nu1,maqam_0001,1\nu2,maqam_0002,-3\n")
    with pytest.raises(SystemExit):
        interactions.main(["dataset=rec", f"import={log}"])
    assert "row 3: weight must be a finite number >= 0" in capsys.readouterr().err
    log.write_text("user,track_id\nu1,maqam_0001\n")
    with pytest.raises(SystemExit):
        interactions.main(["dataset=rec", f"import={log}"])
    assert "missing column user_id" in capsys.readouterr().err
