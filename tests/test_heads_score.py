"""`just score`: new files are embedded as the lake embedded its dataset, so a clip scored from
its file gets the score the run gave the same clip in the lake; bad input is one line each."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import encode, tone
from embed import engine
from embed.engine import EmbedConfig
from embed.files import FilesError, embed_files
from heads import clips, score
from heads.testing import write_split
from heads.train import train
from ingest.api import ingest
from lake.cli import UsageError


def takes(root: Path) -> tuple[Path, dict[str, Path]]:
    """30 short takes in 6 groups, half of them m4a; pitch follows the score, so logmel can learn it."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows, files = [], {}
    for i in range(30):
        value = float(np.round(rng.uniform(50, 98), 1))
        fmt = "m4a" if i % 2 else "wav"
        path = root / f"take{i:02d}.{fmt}"
        wave = tone(0.6, 16000, freq=150 + 6 * value, seed=i)
        path.write_bytes(encode(wave, 16000, fmt))
        rows.append({"track_id": f"take{i:02d}", "audio_path": path.name, "score": value, "group_id": f"g{i // 5}",
                     "speaker_id": f"s{i % 4}"})
        files[f"take{i:02d}"] = path
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root, files


@pytest.fixture
def scored_lake(tmp_path):
    folder, files = takes(tmp_path / "takes")
    ingest("takes", source="folder", path=folder, workers=1)
    engine.run(EmbedConfig(dataset="takes", backbone="logmel", loader_workers=0))
    write_split("takes", "default", {t: ("train", "train", "train", "val", "test", "train")[int(t[4:]) // 5]
                                     for t in files})
    run = train("scorer", dataset="takes", backbone="logmel", epochs=15)
    return run, files


def test_a_wav_and_an_m4a_score_as_the_lake_scored_them(scored_lake, capsys):
    run, files = scored_lake
    lake = pq.read_table(run.folder / "predictions.parquet").to_pandas().set_index("track_id")
    chosen = [files["take08"], files["take13"]]  # a wav and an m4a
    found = score.find_run(score.ScoreConfig(run="latest", dataset="takes"))
    assert found["run_id"] == run.run_id
    scores, failed, bands = score.score_files(found, chosen)
    assert not failed and bands == [50.0, 85.0]
    for path in chosen:  # the raw output to float32 rounding (another batch shape), hence the score
        assert scores[path][1] == pytest.approx(lake.loc[path.stem, "raw"], rel=1e-5, abs=1e-6)
        assert scores[path][0] == pytest.approx(lake.loc[path.stem, "calibrated"], abs=1e-3)

    # the vectors themselves are the lake's, bit for bit: same decoding, resampling and pooling
    got = embed_files(chosen, "logmel", ["stats"])
    stored = run.data.features("stats")
    rows = np.searchsorted(run.data.track_ids, [p.stem for p in chosen])
    assert got.paths == chosen and np.array_equal(got.vectors["stats"], stored[rows])

    assert score.main([f"run={run.run_id}", *map(str, chosen)]) == 0
    out = capsys.readouterr().out
    for path in chosen:
        assert path.name in out and f"{scores[path][0]:.2f}" in out and f"{scores[path][1]:.4f}" in out


def test_bad_input_is_one_line_each_and_the_rest_still_scores(scored_lake, tmp_path, capsys):
    run, files = scored_lake
    text = tmp_path / "notes.txt"
    text.write_text("not audio\n")
    missing = tmp_path / "gone.wav"
    assert score.main(["run=latest", "dataset=takes", str(files["take03"]), str(missing), str(text)]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "gone.wav: no such file" in errors[0] and "notes.txt: decode failed" in errors[1]
    assert "Traceback" not in captured.err and "take03.m4a" in captured.out

    with pytest.raises(UsageError, match=r"run='nope' is not in the runs table \(just runs lists them\)"):
        score.main(["run=nope", str(files["take03"])])
    with pytest.raises(UsageError, match="run=latest: no scorer run on dataset other"):
        score.main(["dataset=other", str(files["take03"])])
    with pytest.raises(UsageError, match="name one or more audio files"):
        score.main([f"run={run.run_id}"])
    exported = clips.export(clips.ClipsConfig(dataset="takes", where="track_id IN ('take02', 'take03')", out=tmp_path / "x"))
    assert [p.name for p in exported] == ["take02.wav", "take03.m4a"]
    assert [p.read_bytes() for p in exported] == [files["take02"].read_bytes(), files["take03"].read_bytes()]

    probe = train("probe", dataset="takes", backbone="logmel", target="speaker_id", epochs=5)
    with pytest.raises(UsageError, match="is a probe run: just score takes a scorer run"):
        score.main([f"run={probe.run_id}", str(files["take03"])])


def test_embed_files_refuses_a_backbone_the_lake_never_used(tmp_path):
    with pytest.raises(FilesError, match="backbone 'logmel' has no provenance row"):
        embed_files([tmp_path / "x.wav"], "logmel")
