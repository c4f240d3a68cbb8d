"""Leakage checks: each planted problem is caught by the check made for it, and only by it."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import encode, tone
from embed import engine, store
from ingest.api import ingest
from lake import atomic, catalog, leakage, paths, splits
from lake.cli import run_main
from lake.schemas import tracks_table

DIM = 32


def base_lake(n: int = 40, seed: int = 0) -> dict:
    """n tracks: 8 speakers each wholly inside one split, distinct audio, random (far apart) vectors."""
    rng = np.random.default_rng(seed)
    split = ["train"] * int(n * 0.6) + ["val"] * int(n * 0.2)
    split += ["test"] * (n - len(split))
    speakers = {"train": ["s0", "s1", "s2", "s3"], "val": ["s4", "s5"], "test": ["s6", "s7"]}
    rows = [{"track_id": f"t{i:03d}", "sha256": f"{i:064x}", "label": ["rock", "folk"][i % 2],
             "speaker_id": speakers[s][i % len(speakers[s])], "split": s} for i, s in enumerate(split)]
    return {"rows": rows, "vectors": rng.standard_normal((n, DIM)).astype(np.float32)}


def write_lake(lake: dict, dataset: str = "p", backbone: str = "vec") -> None:
    """Tracks, a split and vectors through the lake's own writers."""
    rows = [{"dataset": dataset, "shard": "s.tar", "key": r["track_id"], "offset": 512, "nbytes": 10, "format": "wav",
             "duration_s": 1.0, "sample_rate": 16000, "channels": 1, "source": "test", **r} for r in lake["rows"]]
    atomic.write_parquet(tracks_table(rows), paths.partition_dir("tracks", dataset=dataset) / "part-000000.parquet")
    with_vectors = [k for k, r in enumerate(lake["rows"]) if not r.get("no_vector")]
    ids = [lake["rows"][k]["track_id"] for k in with_vectors]
    shas = [lake["rows"][k]["sha256"] for k in with_vectors]
    store.write_part(store.part_path(dataset, backbone, "shards/p/b0/p-000000.tar"), dataset, backbone, DIM,
                     {"last": (ids, shas, lake["vectors"][with_vectors])}, "shards/p/b0/p-000000.tar", [], "x")
    store.write_backbone({"backbone": backbone, "spec": backbone, "dim": DIM, "layers": ["last"]})
    with pytest.raises(SystemExit) as done:
        run_main(splits.main, [f"dataset={dataset}", "name=s", "from_source=true", "allow_leakage=true"])
    assert done.value.code == 0


def statuses(threshold: float = 0.95) -> dict[str, tuple[str, int]]:
    checks = leakage.run_checks(catalog.connect(), "p", "s", ("speaker_id",), "vec", None, threshold)
    return {c.name: (c.status, c.count) for c in checks}


CLEAN = {"audio": ("clean", 0), "group:speaker_id": ("clean", 0), "near_duplicates": ("clean", 0)}


def test_a_clean_dataset_passes_all_three():
    write_lake(base_lake())
    assert statuses() == CLEAN


def test_identical_audio_across_splits_is_caught_by_the_sha256_check_only():
    lake = base_lake()
    train, test = lake["rows"][1], lake["rows"][-1]
    test["sha256"] = train["sha256"]                       # the same bytes stored twice ...
    lake["vectors"][-1] = lake["vectors"][1]               # ... so, the same vector
    write_lake(lake)
    assert statuses() == {**CLEAN, "audio": ("leak", 1)}
    (check,) = [c for c in leakage.run_checks(catalog.connect(), "p", "s", (), None, None, 0.9) if c.name == "audio"]
    assert check.examples[0]["track_ids"] == [test["track_id"], train["track_id"]]


def test_a_speaker_in_two_splits_is_caught_by_the_group_check_only():
    lake = base_lake()
    lake["rows"][-1]["speaker_id"] = "s0"  # a test track sung by a train speaker
    write_lake(lake)
    assert statuses() == {**CLEAN, "group:speaker_id": ("leak", 1)}


def test_a_near_duplicate_vector_pair_is_caught_by_the_faiss_check_only():
    lake = base_lake()
    rng = np.random.default_rng(5)
    lake["vectors"][-1] = lake["vectors"][0] + 0.01 * rng.standard_normal(DIM)  # test ≈ train, other audio
    lake["vectors"][3] = lake["vectors"][2] + 0.01 * rng.standard_normal(DIM)   # train ≈ train: no leak
    write_lake(lake)
    assert statuses() == {**CLEAN, "near_duplicates": ("leak", 1)}
    (check,) = [c for c in leakage.run_checks(catalog.connect(), "p", "s", (), "vec", None, 0.95)
                if c.name == "near_duplicates"]
    example = check.examples[0]
    assert {(example["track_a"], example["split_a"]), (example["track_b"], example["split_b"])} == {
        ("t000", "train"), ("t039", "test")} and example["cosine"] > 0.99


def test_nan_and_missing_vectors_are_counted_not_compared():
    lake = base_lake()
    lake["vectors"][0] = np.nan
    lake["rows"][1]["no_vector"] = True
    write_lake(lake)
    checks = leakage.run_checks(catalog.connect(), "p", "s", (), "vec", None, 0.95)
    near = checks[-1]
    assert near.status == "clean" and "2 tracks of the split without a usable vector" in near.detail


def test_cross_split_pairs_match_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    x[100:140] = x[:40] + 0.05 * rng.standard_normal((40, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codes = rng.integers(0, 3, 600)
    i, j, cos = leakage.cross_split_pairs(x, codes, 0.9, block=128)
    sims = x @ x.T
    want = {(a, b) for a, b in zip(*np.nonzero(sims >= 0.9)) if a < b and codes[a] != codes[b]}
    assert set(zip(i.tolist(), j.tolist())) == want and len(want) > 10
    assert np.allclose(cos, sims[i, j], atol=1e-5)


def test_the_report_command_writes_json_and_markdown_and_fails_on_leakage(capsys):
    lake = base_lake()
    lake["rows"][-1]["speaker_id"] = "s0"
    write_lake(lake)
    # the group column defaults to the split's own (none here), so name it
    with pytest.raises(SystemExit) as done:
        run_main(leakage.main, ["dataset=p", "name=s", "group=speaker_id", "backbone=vec", "threshold=0.95"])
    assert done.value.code == 1
    assert "same speaker_id across splits: LEAK" in capsys.readouterr().out
    report = json.loads((paths.reports_dir("p") / "leakage-s.json").read_text())
    assert report["leakage"] and report["splits"] == {"train": 24, "val": 8, "test": 8}
    assert "| s0 | 7 | 6 | 0 | 1 |" in (paths.reports_dir("p") / "leakage-s.md").read_text()
    with pytest.raises(SystemExit) as done:
        run_main(leakage.main, ["dataset=p", "name=nope"])
    assert done.value.code == 2 and "no split 'nope' of dataset=p (splits: s)" in capsys.readouterr().err


def test_real_audio_end_to_end_each_planted_problem_in_its_check(tmp_path, capsys):
    """Folder ingest → logmel vectors → `just split from_source=true backbone=logmel`."""
    folder = tmp_path / "in"
    folder.mkdir()
    clips = [  # octave-spaced tones: logmel cosine between any two stays below ~0.97
        ("a", 200, 1, "train", "spk1"), ("b", 400, 2, "train", "spk2"), ("c", 800, 3, "val", "spk3"),
        ("d", 1600, 4, "test", "spk4"), ("e", 3200, 5, "test", "spk5"),
        ("c_take2", 800, 99, "train", ""),   # the same tone, other noise: a near-duplicate of c
        ("f", 6400, 6, "val", "spk1"),       # spk1 sings in train and val
    ]
    rows = []
    for track_id, freq, seed, split, speaker in clips:
        (folder / f"{track_id}.wav").write_bytes(encode(tone(0.5, freq=freq, seed=seed), 16000, "wav"))
        rows.append({"track_id": track_id, "audio_path": f"{track_id}.wav", "split": split, "speaker_id": speaker})
    (folder / "a_copy.wav").write_bytes((folder / "a.wav").read_bytes())   # identical audio, in test
    rows.append({"track_id": "a_copy", "audio_path": "a_copy.wav", "split": "test", "speaker_id": ""})
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ingest("real", source="folder", path=folder, workers=1)
    engine.run(engine.EmbedConfig(dataset="real", backbone="logmel", loader_workers=0))

    args = ["dataset=real", "from_source=true", "group=speaker_id", "backbone=logmel", "threshold=0.995"]
    with pytest.raises(SystemExit) as done:
        run_main(splits.main, args)
    assert done.value.code == 1 and not splits.part_path("real", "default").exists()
    report = json.loads((paths.reports_dir("real") / "leakage-default.json").read_text())
    found = {c["name"]: c for c in report["checks"]}
    assert found["audio"]["count"] == 1 and found["audio"]["examples"][0]["track_ids"] == ["a_copy", "a"]
    assert [e["group_value"] for e in found["group:speaker_id"]["examples"]] == ["spk1"]
    assert found["near_duplicates"]["count"] == 1
    pair = found["near_duplicates"]["examples"][0]
    assert {pair["track_a"], pair["track_b"]} == {"c", "c_take2"}
    with pytest.raises(SystemExit) as done:
        run_main(splits.main, [*args, "allow_leakage=true"])
    assert done.value.code == 0 and splits.part_path("real", "default").exists()
    assert "written with leakage" in (paths.reports_dir("real") / "leakage-default.md").read_text()
