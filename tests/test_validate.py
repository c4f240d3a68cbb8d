"""`just validate` on real lakes: a clean one passes, and each planted problem is caught by the
check meant for it (and by no other), with exit code 1 for errors."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_clip

from embed import engine
from embed.engine import EmbedConfig
from ingest.api import ingest
from lake import atomic, catalog, paths, validate
from lake.cli import UsageError
from lake.schemas import tracks_table
from lake.vectors import write_vector_parquet


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One lake per module: `demo` (64 structured clips) and `planted` (13 folder clips, two of
    them the same audio), both embedded with logmel. Each test works on its own copy."""
    root = tmp_path_factory.mktemp("validate") / "lake"
    folder = root.parent / "in"
    rows = ["track_id,audio_path,label,culture"]
    for i in range(12):
        write_clip(folder / f"c{i:02d}.wav", seconds=0.5, seed=i)
        label = "" if i == 7 else "ab"[i % 2]
        rows.append(f"c{i:02d},c{i:02d}.wav,{label},x")
    shutil.copy(folder / "c11.wav", folder / "c12.wav")  # identical bytes under another id
    rows.append("c12,c12.wav,b,x")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    before = os.environ.get("AUDIOLAKE_ROOT")
    os.environ["AUDIOLAKE_ROOT"] = str(root)
    try:
        ingest("demo", n=64, duration_s=2.0, workers=1)
        ingest("planted", source="folder", path=folder, workers=1)
        for dataset in ("demo", "planted"):
            engine.run(EmbedConfig(dataset=dataset, backbone="logmel", loader_workers=0))
    finally:
        os.environ.pop("AUDIOLAKE_ROOT") if before is None else os.environ.__setitem__("AUDIOLAKE_ROOT", before)
    return root


@pytest.fixture
def lake(built, lake_root) -> Path:
    shutil.copytree(built, lake_root)
    return lake_root


def run(*args: str) -> tuple[int, dict]:
    code = validate.main(list(args))
    dataset = next(a.split("=", 1)[1] for a in args if a.startswith("dataset="))
    profile = json.loads((paths.reports_dir(dataset) / "profile.json").read_text())
    return code, profile


def failing(profile: dict) -> dict[str, dict]:
    return {c["name"]: c for c in profile["checks"] if not c["passed"]}


def embedding_part(dataset: str) -> Path:
    (part,) = sorted(paths.partition_dir("embeddings", dataset=dataset, backbone="logmel").glob("part-*.parquet"))
    return part


def rewrite_vectors(part: Path, edit) -> None:
    """Rewrites one embeddings part by hand, as another tool might: edit(ids, matrix) → (ids, matrix)."""
    table = pq.read_table(part)
    dim = table.schema.field("emb").type.list_size
    matrix = table.column("emb").combine_chunks().flatten().to_numpy().reshape(-1, dim).copy()
    keep = edit(table.column("track_id").to_pylist(), matrix)
    table = table.filter(pa.array(keep))
    matrix = matrix[keep]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), dim)
    table = table.set_column(table.schema.get_field_index("emb"), "emb", emb)
    write_vector_parquet(table, part, atomic.read_parquet_metadata(part))


def test_clean_dataset_passes_and_writes_the_report(lake, capsys):
    code, profile = run("dataset=demo", "backbone=logmel")
    assert code == 0 and profile["fit_to_train"]
    assert failing(profile) == {}
    directory = paths.reports_dir("demo")
    for name in ("profile.md", "audio.png", "classes.png", "norms_logmel.png", "pca_logmel.png"):
        assert (directory / name).is_file(), name
    image = matplotlib.image.imread(directory / "pca_logmel.png")
    assert image.shape[0] > 300 and image.shape[1] > 600 and image[..., :3].std() > 0.05  # drawn, not blank
    assert sum(profile["counts"]["culture"].values()) == 64 and set(profile["counts"]["label"]) == {
        "rock", "ambient", "electronic", "folk"}
    assert profile["backbones"]["logmel"]["coverage"]["with_vectors"] == 64
    assert len(profile["backbones"]["logmel"]["pca_explained_variance"]) == 2
    md = (directory / "profile.md").read_text()
    assert md.splitlines()[2].startswith("**✅ Verdict: fit to train")
    assert "](pca_logmel.png)" in md and "](audio.png)" in md and "| median |" in md
    out = capsys.readouterr().out
    assert "fit to train" in out and "profile.md" in out


def test_every_planted_problem_is_caught_by_its_own_check(lake):
    def plant(ids, matrix):
        matrix[ids.index("c03"), 5] = np.nan
        matrix[ids.index("c04")] = 0.0
        return [t != "c05" for t in ids]                      # c05 loses its vector

    rewrite_vectors(embedding_part("planted"), plant)
    tracks_part = paths.partition_dir("tracks", dataset="planted") / "part-000000.parquet"
    tracks = pq.read_table(tracks_part)
    rows = tracks.to_pylist()
    atomic.write_parquet(tracks_table(rows + [r for r in rows if r["track_id"] == "c06"]), tracks_part)

    code, profile = run("dataset=planted", "backbone=logmel")
    assert code == 1 and not profile["fit_to_train"]
    bad = failing(profile)
    assert set(bad) == {"duplicate_track_id", "duplicate_audio", "missing_labels",
                        "coverage:logmel", "nan_inf:logmel", "zero_norm:logmel"}
    assert bad["duplicate_track_id"]["examples"] == ["c06 ×2"]
    assert bad["duplicate_audio"]["examples"] == ["c11 = c12"] and bad["duplicate_audio"]["level"] == "warning"
    assert bad["coverage:logmel"]["examples"] == ["c05"] and bad["coverage:logmel"]["level"] == "error"
    assert bad["nan_inf:logmel"]["examples"] == ["c03"]
    assert bad["zero_norm:logmel"]["examples"] == ["c04"]
    assert "1 of 14 clips have no label" in bad["missing_labels"]["detail"] and bad["missing_labels"]["examples"] == ["c07"]
    md = (paths.reports_dir("planted") / "profile.md").read_text()
    assert "NOT fit to train" in md.splitlines()[2] and "| nan_inf:logmel | error | **FAIL** |" in md


def test_vectors_of_another_width_fail_the_dims_check(lake):
    directory = paths.partition_dir("embeddings", dataset="planted", backbone="logmel")
    rewrite_vectors(embedding_part("planted"), lambda ids, m: [t != "c05" for t in ids])
    odd = pa.table({"dataset": ["planted"], "backbone": ["logmel"], "track_id": ["c05"], "sha256": [None],
                    "layer": ["stats"], "emb": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(8, np.float32)), 8)})
    write_vector_parquet(odd, directory / "part-other-tool.parquet")
    code, profile = run("dataset=planted", "backbone=logmel")
    bad = failing(profile)
    assert code == 1 and "dims:logmel" in bad and "coverage:logmel" not in bad
    assert profile["backbones"]["logmel"]["dims"] == {"256": 12, "8": 1}
    # the vectors of the registered width are still checked and plotted
    assert "nan_inf:logmel" not in bad and profile["backbones"]["logmel"]["norm"]["median"] > 0


def test_a_requested_backbone_without_vectors_is_an_error(lake):
    code, profile = run("dataset=demo", "backbone=logmel,musicnn-mtt")
    bad = failing(profile)
    assert code == 1 and set(bad) == {"coverage:musicnn-mtt"}
    assert bad["coverage:musicnn-mtt"]["detail"].startswith("no vectors stored")


def test_without_backbone_every_embedded_one_is_profiled(lake):
    code, profile = run("dataset=demo")
    assert code == 0 and list(profile["backbones"]) == ["logmel"]


def test_imbalance_and_tiny_classes_warn_but_do_not_fail():
    rows = [{"dataset": "tiny", "track_id": f"t{i}", "shard": "s.tar", "key": f"t{i}", "offset": 0, "nbytes": 1,
             "format": "wav", "sha256": f"{i:064d}", "duration_s": 1.0, "sample_rate": 16000, "channels": 1,
             "source": "test", "peak_db": -6.0, "rms_db": -20.0,
             "label": "big" if i < 60 else "small"} for i in range(63)]
    atomic.write_parquet(tracks_table(rows), paths.partition_dir("tracks", dataset="tiny") / "part-000000.parquet")
    catalog.refresh()
    code, profile = run("dataset=tiny")
    bad = failing(profile)
    assert code == 0 and set(bad) == {"class_imbalance:label", "tiny_classes:label", "embeddings"}
    assert "= 20.0" in bad["class_imbalance:label"]["detail"] and bad["tiny_classes:label"]["examples"] == ["small (3)"]
    assert profile["verdict"].startswith("fit to train, with 3 warning(s)")


def test_bad_arguments_are_one_line_errors(lake, capsys):
    with pytest.raises(SystemExit) as exit_info:
        validate.main(["dataset=demo", "backbone=logmel", "layer=nope"])
    assert exit_info.value.code == 1
    assert "no layer 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        validate.main(["dataset=absent"])
    assert "has no tracks" in capsys.readouterr().err
    with pytest.raises(UsageError, match="unknown key bakbone="):
        validate.main(["dataset=demo", "bakbone=logmel"])
