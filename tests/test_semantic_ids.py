"""head=semantic_ids: residual k-means codes, their statistics, the table and collisions.sql."""
from __future__ import annotations

import numpy as np
import pytest

from heads.rq_kmeans import LevelStats, RQKMeans, assign, collisions, dedup_digit
from heads.testing import clusters, toy_lake
from heads.train import train
from lake import catalog, queries


def test_each_level_reconstructs_better():
    X, _ = clusters(2000, 16, 12, separation=3.0)
    rq = RQKMeans(codes=(8, 8, 8, 8), seed=0).fit(X)
    stats = LevelStats(rq.codes)
    codes = rq.encode(X, stats)
    errors = stats.result()["recon_error"]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    direct = np.sum((X - rq.decode(codes)) ** 2) / np.sum(X ** 2)
    assert direct == pytest.approx(errors[-1], rel=1e-3)


def test_codes_deterministic_for_a_seed_and_over_cluster_keeps_k():
    X, _ = clusters(1500, 8, 5, separation=2.0)
    one = RQKMeans(codes=(16, 16), seed=3).fit(X).encode(X)
    two = RQKMeans(codes=(16, 16), seed=3).fit(X).encode(X)
    assert np.array_equal(one, two)
    merged = RQKMeans(codes=(16, 16), seed=3, over_cluster=4).fit(X)
    assert [len(c) for c in merged.centroids_] == [16, 16]


def test_assignment_matches_numpy_argmin():
    rng = np.random.default_rng(0)
    points, centroids = rng.standard_normal((500, 12)).astype(np.float32), rng.standard_normal((20, 12)).astype(np.float32)
    expected = np.argmin(((points[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(assign(points, centroids), expected)


def test_fit_samples_256_rows_per_code_and_encoding_any_row_order_agrees():
    assert RQKMeans(codes=(256, 256, 256)).sample_size() == 65536            # FAISS's own rule
    assert RQKMeans(codes=(256, 256), over_cluster=4).sample_size() == 262144  # capped by train_points
    assert RQKMeans(codes=(8,), points_per_code=0, train_points=0).sample_size() == 0  # every row
    X, _ = clusters(3000, 8, 5, separation=2.0)
    rq = RQKMeans(codes=(8, 4), seed=0, chunk=700).fit(X)
    order = np.random.default_rng(1).permutation(len(X))
    whole, shuffled, tail = rq.encode(X), rq.encode(X, rows=order), rq.encode(X, rows=np.arange(1000, 3000))
    assert np.array_equal(whole[order], shuffled) and np.array_equal(whole[1000:], tail)


def test_collision_stats_match_a_hand_count():
    codes = np.array([[1, 2], [1, 2], [1, 2], [0, 5], [0, 5], [3, 3]])
    assert collisions(codes) == {"songs": 6, "ids": 3, "shared_ids": 2, "songs_in_shared": 5, "largest": 3}
    digit = dedup_digit(codes)
    assert digit.tolist() == [0, 1, 2, 0, 1, 0]
    assert collisions(np.c_[codes, digit])["shared_ids"] == 0
    wide = np.array([[2**40, 7], [2**40, 7], [5, 2**40]])  # packed keys would overflow: rows compared instead
    assert collisions(wide)["shared_ids"] == 1 and dedup_digit(wide).tolist() == [0, 1, 0]


def test_head_writes_the_table_and_collisions_sql_agrees():
    toy_lake("toy", n=120, classes=3, dim=8)
    run = train("semantic_ids", dataset="toy", backbone="fake", codes="4,4", dedup="true")
    val = run.metrics["val"]
    assert val["recon_error_per_level"][1] < val["recon_error_per_level"][0]
    assert 0 < val["usage_per_level"][0] <= 1 and val["perplexity_per_level"][0] > 1
    con = catalog.connect()
    rows = con.execute("SELECT track_id, codes FROM semantic_ids WHERE run_id = $r ORDER BY track_id",
                       {"r": run.run_id}).fetchall()
    assert len(rows) == 120 and all(len(c) == 3 for _, c in rows)
    assert len({tuple(c) for _, c in rows}) == 120          # the dedup digit makes IDs unique
    base = np.array([c[:2] for _, c in rows])
    answer = queries.run_file(con, "collisions", run_id=run.run_id).to_pylist()[0]
    assert answer["ids"] == 120                           # the table holds the deduplicated IDs
    assert collisions(base) == run.metrics["all"]["collisions"]
    assert (run.folder / "semantic_ids.parquet").exists()
    plain = train("semantic_ids", dataset="toy", backbone="fake", codes="4,4")
    answer = queries.run_file(catalog.connect(), "collisions", run_id=plain.run_id).to_pylist()[0]
    assert answer.pop("run_id") == plain.run_id
    assert {k: int(v) for k, v in answer.items()} == plain.metrics["all"]["collisions"]
    latest = queries.run_file(catalog.connect(), "collisions", run_id="latest").to_pylist()[0]
    assert latest["run_id"] == plain.run_id


def test_rqvae_codes_are_deterministic_and_levels_refine_the_latent():
    from heads.rq_vae import RQVAE
    X, _ = clusters(1200, 16, 8, separation=3.0)
    make = lambda: RQVAE(codes=(8, 8, 8), seed=0, hidden=32, latent=8, epochs=4, batch=256).fit(X)  # noqa: E731
    first = make()
    stats = LevelStats(first.codes)
    codes = first.encode(X, stats)
    assert np.array_equal(codes, make().encode(X))
    errors = stats.result()["recon_error"]
    assert errors[0] > errors[1] > errors[2], errors
    assert collisions(codes)["ids"] > 8
    toy_lake("toy", n=120, classes=3, dim=8)
    run = train("semantic_ids", dataset="toy", backbone="fake", codes="4,4", method="rqvae", epochs=2, latent=4,
                hidden=16)
    assert run.metrics["val"]["n"] > 0 and (run.folder / "semantic_ids.parquet").exists()
