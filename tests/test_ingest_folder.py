"""Folder ingest end to end: real files in every format, bad files reported, shards readable."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds

from conftest import write_clip
from ingest import build
from ingest.api import ingest
from ingest.shards import read_member
from lake import catalog, paths


def messy_folder(root: Path) -> dict[str, Path]:
    """The acceptance folder: three bad files among good ones with awkward names."""
    files = {
        "plain": write_clip(root / "plain.wav", seed=1),
        "stereo": write_clip(root / "stereo 44k.wav", rate=44100, channels=2, seed=2),
        "unicode": write_clip(root / "chanson d'été – naïve.wav", seed=3),
        "dots": write_clip(root / "blues.00001.take.2.wav", seed=4),
    }
    good = (root / "plain.wav").read_bytes()
    (root / "truncated.wav").write_bytes(good[: len(good) // 2])
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("this is a text file, not audio\n")
    (root / "readme.txt").write_text("ignored: not an audio extension\n")
    return files


def tracks(con, dataset: str) -> list[dict]:
    return con.sql(f"SELECT * FROM tracks WHERE dataset = '{dataset}' ORDER BY track_id").to_arrow_table().to_pylist()


def test_messy_folder_reports_the_three_bad_files_and_ingests_the_rest(tmp_path):
    folder = tmp_path / "mine"
    good = messy_folder(folder)
    result = ingest("mine", source="folder", path=folder, workers=2)

    reasons = {Path(s["source"]).name: s["reason"] for s in result.skipped}
    assert set(reasons) == {"truncated.wav", "empty.wav", "notes.wav"}
    assert "truncated" in reasons["truncated.wav"]
    assert "empty" in reasons["empty.wav"]
    assert "not decodable" in reasons["notes.wav"]
    assert result.written == len(good)

    rows = {r["track_id"]: r for r in tracks(catalog.connect(), "mine")}
    assert set(rows) == {"plain", "stereo 44k", "chanson d'été – naïve", "blues.00001.take.2"}
    stereo = rows["stereo 44k"]
    assert (stereo["sample_rate"], stereo["channels"]) == (44100, 2)
    assert stereo["duration_s"] == pytest.approx(0.5)
    for row in rows.values():
        assert "." not in row["key"] and row["key"].isascii()
    report = json.loads(Path(result.report).read_text())
    assert len(report["skipped"]) == 3


def test_strict_turns_a_skip_into_a_failure_and_commits_nothing(tmp_path):
    folder = tmp_path / "mine"
    messy_folder(folder)
    with pytest.raises(build.IngestFailed, match="strict=true"):
        ingest("mine", source="folder", path=folder, strict=True, workers=1)
    assert not build.tracks_part("mine").exists()
    assert [p for p in paths.shards_dir("mine").iterdir() if p.is_dir()] == []


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_each_format_is_stored_byte_for_byte(tmp_path, fmt):
    folder = tmp_path / fmt
    clip = write_clip(folder / f"clip.{fmt}", fmt=fmt, seconds=1.0, rate=22050)
    result = ingest(fmt, source="folder", path=folder, workers=1)
    assert result.written == 1, result.skipped
    (row,) = tracks(catalog.connect(), fmt)
    assert row["format"] == fmt
    assert row["sample_rate"] == 22050 and row["channels"] == 1
    # Lossy codecs add encoder delay/padding: duration is what the decoder yields, near 1 s.
    assert row["duration_s"] == pytest.approx(1.0, abs=0.08)
    stored = read_member(paths.root() / row["shard"], row["offset"], row["nbytes"])
    assert stored == clip.read_bytes()
    assert row["sha256"] == hashlib.sha256(stored).hexdigest()


def test_transcode_flac_keeps_the_samples(tmp_path):
    folder = tmp_path / "tx"
    clip = write_clip(folder / "a.wav", seconds=0.3)
    ingest("tx", source="folder", path=folder, transcode="flac", workers=1)
    (row,) = tracks(catalog.connect(), "tx")
    assert row["format"] == "flac"
    flac = read_member(paths.root() / row["shard"], row["offset"], row["nbytes"])
    np.testing.assert_array_equal(sf.read(io.BytesIO(flac), dtype="int16")[0], sf.read(clip, dtype="int16")[0])


def test_n_written_is_n_read_back_through_webdataset_and_offsets_seek_to_the_same_bytes(tmp_path):
    folder = tmp_path / "many"
    for i in range(23):  # names with dots would merge samples if keys kept them
        write_clip(folder / f"genre{i % 3}" / f"genre{i % 3}.{i:05d}.wav", seconds=0.1, seed=i)
    result = ingest("many", source="folder", path=folder, shard_max_count=5, workers=2)
    assert result.written == 23 and len(result.shards) == 5

    rows = {r["key"]: r for r in tracks(catalog.connect(), "many")}
    urls = [str(paths.root() / s) for s in result.shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert len(samples) == 23
    for sample in samples:
        row = rows[sample["__key__"]]
        seeked = read_member(paths.root() / row["shard"], row["offset"], row["nbytes"])
        assert sample["wav"] == seeked
        assert json.loads(sample["json"])["track_id"] == row["track_id"]
    assert {r["label"] for r in rows.values()} == {"genre0", "genre1", "genre2"}


def test_reingest_is_a_noop_and_force_rebuilds(tmp_path):
    folder = tmp_path / "re"
    write_clip(folder / "a.wav")
    first = ingest("re", source="folder", path=folder, workers=1)
    part = build.tracks_part("re")
    stamp = part.stat().st_mtime_ns
    again = ingest("re", source="folder", path=folder, workers=1)
    assert again.status == "unchanged" and part.stat().st_mtime_ns == stamp
    forced = ingest("re", source="folder", path=folder, force=True, workers=1)
    assert forced.status == "written" and forced.shards != first.shards
    assert (paths.root() / first.shards[0]).exists(), "readers of the previous manifest still find its shards"
    ingest("re", source="folder", path=folder, force=True, workers=1)
    assert not (paths.root() / first.shards[0]).exists(), "two builds back is removed"
    assert (paths.root() / forced.shards[0]).exists()
    write_clip(folder / "b.wav", seed=9)
    changed = ingest("re", source="folder", path=folder, workers=1)
    assert changed.status == "written" and changed.written == 2


def test_interrupted_ingest_leaves_the_previous_build_readable(tmp_path, monkeypatch):
    folder = tmp_path / "int"
    for i in range(6):
        write_clip(folder / f"c{i}.wav", seed=i)
    ingest("int", source="folder", path=folder, workers=1)
    before = tracks(catalog.connect(), "int")
    write_clip(folder / "c6.wav", seed=6)

    import ingest.check as check
    real, calls = check.check_one, []

    def dies_midway(item, transcode):
        calls.append(item)
        if len(calls) == 4:
            raise KeyboardInterrupt  # what Ctrl-C or a kill does mid-build
        return real(item, transcode)

    monkeypatch.setattr(check, "check_one", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ingest("int", source="folder", path=folder, workers=1)
    after = tracks(catalog.connect(), "int")
    assert after == before
    for row in after:
        assert read_member(paths.root() / row["shard"], row["offset"], row["nbytes"])
    builds = [p for p in paths.shards_dir("int").iterdir() if p.is_dir()]
    assert len(builds) == 1


def test_a_killed_build_directory_is_cleaned_up_by_the_next_run(tmp_path):
    folder = tmp_path / "k"
    write_clip(folder / "a.wav")
    ingest("k", source="folder", path=folder, workers=1)
    stale = paths.shards_dir("k") / "b19700101T000000Z-dead00"
    stale.mkdir()
    (stale / "k-000000.tar").write_bytes(b"half a tar")
    ingest("k", source="folder", path=folder, force=True, workers=1)
    assert not stale.exists()


def test_metadata_csv_keeps_extra_columns_and_reports_missing_files(tmp_path):
    folder = tmp_path / "meta"
    write_clip(folder / "audio" / "x1.wav", seed=1)
    write_clip(folder / "audio" / "x2.flac", fmt="flac", seed=2)
    (folder / "metadata.csv").write_text(
        "track_id,culture,audio_path,label,terms,bpm,score\n"
        "x1,turkish,audio/x1.wav,makam,ney|taksim,92,80\n"
        "x2,carnatic,audio/x2.flac,kriti,,120,75.5\n"
        "x3,west,audio/missing.wav,pop,,100,1\n"
        "x4,west,audio/x1.wav,pop,,100,n/a\n"
    )
    result = ingest("meta", source="folder", path=folder, workers=1)
    assert result.written == 2
    assert [s["reason"] for s in result.skipped] == [
        "track 'x3' (row 4): audio file not found", "track 'x4': score='n/a' is not a valid double"]
    rows = {r["track_id"]: r for r in tracks(catalog.connect(), "meta")}
    assert rows["x1"]["culture"] == "turkish" and rows["x1"]["terms"] == ["ney", "taksim"]
    assert rows["x2"]["bpm"] == 120 and rows["x2"]["format"] == "flac"
    assert rows["x2"]["score"] == 75.5 and rows["x1"]["score"] == 80.0


def test_duplicate_audio_is_reported_not_dropped(tmp_path):
    folder = tmp_path / "dup"
    clip = write_clip(folder / "a.wav")
    (folder / "copy of a.wav").write_bytes(clip.read_bytes())
    result = ingest("dup", source="folder", path=folder, workers=1)
    assert result.written == 2
    assert result.duplicates == [["a", "copy of a"]]


def test_shards_are_plain_tars(tmp_path):
    folder = tmp_path / "t"
    write_clip(folder / "a.wav")
    result = ingest("t", source="folder", path=folder, workers=1)
    with tarfile.open(paths.root() / result.shards[0]) as tar:
        assert tar.getnames() == ["a.wav", "a.json"]


def test_long_recordings_are_checked_in_place(tmp_path, monkeypatch):
    import ingest.check as check

    monkeypatch.setattr(check, "IN_MEMORY_MAX_BYTES", 1000)  # every clip counts as long here
    folder = tmp_path / "long"
    clip = write_clip(folder / "a.wav", seconds=1.0)
    good = clip.read_bytes()
    (folder / "cut.wav").write_bytes(good[: len(good) // 2])
    result = ingest("long", source="folder", path=folder, workers=1)
    assert result.written == 1 and [Path(s["source"]).name for s in result.skipped] == ["cut.wav"]
    (row,) = tracks(catalog.connect(), "long")
    assert row["sha256"] == hashlib.sha256(good).hexdigest() and row["nbytes"] == len(good)
    assert row["duration_s"] == pytest.approx(1.0)
