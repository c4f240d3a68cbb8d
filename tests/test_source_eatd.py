"""The EATD-Corpus source on a miniature corpus tree written here."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingest.api import ingest
from ingest.source import SourceError
from conftest import write_clip
from lake import catalog

AFFECTS = ("positive", "neutral", "negative")


def subject(root: Path, name: str, raw: str | None, new: str | None = None, denoised: bool = True,
            transcripts: bool = True, missing: tuple[str, ...] = ()) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    seed = sum(map(ord, name)) * 10
    for i, affect in enumerate(AFFECTS):
        if affect in missing:
            continue
        write_clip(folder / f"{affect}.wav", seconds=0.25, seed=seed + i)
        if denoised:
            write_clip(folder / f"{affect}_out.wav", seconds=0.25, seed=seed + i + 5)
        if transcripts:
            (folder / f"{affect}.txt").write_text(f"{name} 说 {affect}", encoding="utf-8")
    if raw is not None:
        (folder / "label.txt").write_text(raw)
    if new is not None:
        (folder / "new_label.txt").write_text(new)
    return folder


def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "EATD-Corpus"
    subject(root, "t_1", "45", "56.25")         # index 56.25 ≥ 53: depressed
    subject(root, "t_2", "30", "37.5\n")
    subject(root, "t_10", None, "40")           # no label.txt: its three clips are skipped
    subject(root, "v_1", "40.0", denoised=False, transcripts=False)  # raw wavs only, no new_label
    subject(root, "v_2", "42", missing=("neutral",))                  # one answer missing
    (root / "README.txt").write_text("not a subject")
    return root


def rows(dataset: str) -> dict[str, dict]:
    table = catalog.connect().sql(f"SELECT * FROM tracks WHERE dataset = '{dataset}'").to_arrow_table()
    return {r["track_id"]: r for r in table.to_pylist()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_eatd_rows_labels_splits_and_skips(tmp_path):
    root = corpus(tmp_path)
    result = ingest("eatd", source="eatd", path=tmp_path, workers=1)  # the parent works too
    assert result.written == 3 + 3 + 3 + 2

    got = rows("eatd")
    assert set(got) == {f"{s}_{a}" for s in ("t_1", "t_2", "v_1") for a in AFFECTS} | {
        "v_2_positive", "v_2_negative"}
    t1 = got["t_1_negative"]
    assert (t1["split"], t1["speaker_id"], t1["affect_label"]) == ("train", "t_1", "negative")
    assert (t1["sds_raw"], t1["sds_index"], t1["label"]) == (45.0, 56.25, "depressed")
    assert t1["text"] == "t_1 说 negative"
    assert t1["audio_variant"] == "denoised" and t1["sha256"] == sha(root / "t_1" / "negative_out.wav")
    assert got["t_2_neutral"]["label"] == "not_depressed"

    v1 = got["v_1_positive"]
    assert v1["split"] == "val" and v1["sds_index"] == pytest.approx(50.0) and v1["label"] == "not_depressed"
    assert v1["audio_variant"] == "raw" and v1["sha256"] == sha(root / "v_1" / "positive.wav")
    assert v1["text"] is None

    reasons = {(Path(s["source"]).parent.name, Path(s["source"]).name): s["reason"] for s in result.skipped}
    assert len(result.skipped) == 4
    for affect in AFFECTS:
        assert "label.txt not found" in reasons[("t_10", f"{affect}.wav")]
        assert str(root / "t_10" / "label.txt") in reasons[("t_10", f"{affect}.wav")]
    assert "answer audio not found" in reasons[("v_2", "neutral.wav")]


def test_raw_audio_threshold_and_bad_label_file(tmp_path):
    root = tmp_path / "corpus"
    subject(root, "t_1", "45")  # index 56.25 from raw × 1.25
    subject(root, "t_2", "forty-five")
    result = ingest("eatd_raw", source="eatd", path=root, audio="raw", threshold=60, workers=1)
    got = rows("eatd_raw")
    assert set(got) == {f"t_1_{a}" for a in AFFECTS}
    row = got["t_1_positive"]
    assert row["sds_index"] == pytest.approx(56.25) and row["label"] == "not_depressed"  # below 60
    assert row["audio_variant"] == "raw" and row["sha256"] == sha(root / "t_1" / "positive.wav")
    assert len(result.skipped) == 3
    assert all("t_2/label.txt" in s["reason"] and "forty-five" in s["reason"] for s in result.skipped)


def test_not_an_eatd_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no EATD subject folders"):
        ingest("eatd_x", source="eatd", path=tmp_path / "empty", workers=1)
