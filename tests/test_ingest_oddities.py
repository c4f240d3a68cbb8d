"""Issue 8: inputs that used to abort an ingest, or pass it silently, are reported instead."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_clip
from ingest import build, eatd, ranking_json
from ingest.api import ingest
from lake import catalog, paths, validate


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ingest", *args], capture_output=True, text=True)


def tracks(dataset: str) -> dict[str, dict]:
    table = catalog.connect().sql(f"SELECT * FROM tracks WHERE dataset = '{dataset}'").to_arrow_table()
    return {r["track_id"]: r for r in table.to_pylist()}


def write_samples(path: Path, samples, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(samples, dtype=np.float32), rate, subtype="PCM_16")
    return path


# --- (5) tracebacks ------------------------------------------------------------------------


def test_a_dangling_symlink_is_skipped_and_reported_not_fatal(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "a.wav")
    os.symlink(tmp_path / "gone" / "x.wav", folder / "dangling.wav")
    result = ingest("links", source="folder", path=folder, workers=1)
    assert result.written == 1
    (skip,) = result.skipped
    assert skip["source"].endswith("dangling.wav") and "dangling symlink" in skip["reason"]
    report = json.loads(Path(result.report).read_text())
    assert report["skipped"] == result.skipped


def test_a_300_character_dataset_name_is_one_line(tmp_path):
    write_clip(tmp_path / "in" / "a.wav")
    done = run_cli("dataset=" + "a" * 300, "source=folder", f"path={tmp_path / 'in'}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "at most 100 characters" in done.stderr


def test_a_failed_ingest_says_what_happened_not_wrote_none(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_text("not audio")
    done = run_cli("dataset=bad", "source=folder", f"path={bad}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "None" not in done.stderr, done.stderr
    assert "nothing committed" in done.stderr and "x.wav" in done.stderr
    report = json.loads((paths.reports_dir("bad") / "ingest.json").read_text())
    assert report["status"] == "failed" and report["shards"] == [] and report["tracks_part"] is None

    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("dataset=empty", "source=folder", f"path={empty}")
    assert done.returncode == 1 and "None" not in done.stderr, done.stderr
    assert "no clips" in done.stderr


# --- (6) quiet oddities --------------------------------------------------------------------


def odd_folder(root: Path) -> Path:
    write_clip(root / "ok.wav", seed=1)
    write_samples(root / "silent.wav", np.zeros(8000))
    write_samples(root / "tiny.wav", [0.1, -0.2, 0.1])
    write_samples(root / "dc.wav", np.full(8000, 0.5))  # a constant offset: no dynamic range at all
    return root


def test_silent_flat_and_tiny_clips_are_kept_but_flagged(tmp_path):
    folder = odd_folder(tmp_path / "in")
    result = ingest("odd", source="folder", path=folder, workers=1)
    assert result.written == 4 and not result.skipped
    flagged = {Path(f["source"]).name: f for f in result.flagged}
    assert set(flagged) == {"silent.wav", "tiny.wav", "dc.wav"}
    assert flagged["silent.wav"]["flags"] == ["silent"] and "all silence" in flagged["silent.wav"]["reason"]
    assert "short" in flagged["tiny.wav"]["flags"]
    assert flagged["dc.wav"]["flags"] == ["flat"] and "dynamic range" in flagged["dc.wav"]["reason"]
    report = json.loads(Path(result.report).read_text())
    assert [f["track_id"] for f in report["flagged"]] == [f["track_id"] for f in result.flagged]

    rows = tracks("odd")
    assert rows["ok"]["peak_db"] == pytest.approx(20 * np.log10(0.33), abs=0.5)
    assert rows["ok"]["rms_db"] < rows["ok"]["peak_db"]
    assert rows["dc"]["peak_db"] == pytest.approx(rows["dc"]["rms_db"], abs=0.01)
    assert rows["silent"]["peak_db"] <= -120


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a"])
def test_levels_are_measured_in_every_decoder(tmp_path, fmt):
    from conftest import encode
    folder = tmp_path / fmt
    folder.mkdir()
    (folder / f"quiet.{fmt}").write_bytes(encode(np.zeros((4000, 1), np.float32), 16000, fmt))
    write_clip(folder / f"loud.{fmt}", fmt=fmt, seed=1)
    result = ingest(fmt, source="folder", path=folder, workers=1)
    assert [(f["track_id"], f["flags"]) for f in result.flagged] == [("quiet", ["silent"])]
    assert -12 < tracks(fmt)["loud"]["peak_db"] < -8


def test_strict_fails_on_a_flagged_clip(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "ok.wav")
    write_samples(folder / "silent.wav", np.zeros(800))
    with pytest.raises(build.IngestFailed, match="flagged"):
        ingest("strictodd", source="folder", path=folder, strict=True, workers=1)
    assert not build.tracks_part("strictodd").exists()


def test_the_console_mentions_flagged_clips_in_one_line(tmp_path):
    folder = odd_folder(tmp_path / "in")
    done = run_cli("dataset=oddcli", "source=folder", f"path={folder}", "workers=1")
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "flagged" in line]
    assert "3 clips" in line and "silence" in line


def test_validate_reports_flags_from_stored_levels_without_decoding(tmp_path, capsys):
    folder = odd_folder(tmp_path / "in")
    ingest("oddval", source="folder", path=folder, workers=1)
    shutil.rmtree(paths.shards_dir("oddval"))  # validate must not need the audio
    validate.main(["dataset=oddval"])
    profile = json.loads((paths.reports_dir("oddval") / "profile.json").read_text())
    failing = {c["name"]: c for c in profile["checks"] if not c["passed"]}
    assert failing["silent_clips"]["examples"] == ["silent"] and failing["silent_clips"]["level"] == "warning"
    assert failing["low_dynamic_range"]["examples"] == ["dc"]
    assert failing["short_clips"]["examples"] == ["tiny"]
    assert profile["audio_flags"] == {"silent": ["silent"], "flat": ["dc"], "short": ["tiny"]}
    md = (paths.reports_dir("oddval") / "profile.md").read_text()
    assert "| silent_clips | warning | **FAIL** |" in md


def test_validate_says_when_levels_were_never_measured(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "a.wav")
    ingest("old", source="folder", path=folder, workers=1)
    part = build.tracks_part("old")
    import pyarrow.parquet as pq
    from lake import atomic
    table = pq.read_table(part)
    atomic.write_parquet(table.drop_columns(["peak_db", "rms_db"]), part)  # as a lake from before
    catalog.refresh()
    validate.main(["dataset=old"])
    profile = json.loads((paths.reports_dir("old") / "profile.json").read_text())
    check = {c["name"]: c for c in profile["checks"]}["audio_levels"]
    assert not check["passed"] and "force=true" in check["detail"]


def test_an_empty_quoted_csv_cell_is_null_like_an_empty_one(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "a.wav", seed=1)
    write_clip(folder / "b.wav", seed=2)
    write_clip(folder / "c.wav", seed=3)
    (folder / "metadata.csv").write_text(
        'track_id,audio_path,label,take,note\n'
        'a,a.wav,"",1,"  "\n'
        'b,b.wav,,"",x\n'
        'c,c.wav,rock,3,y\n')
    ingest("csvnull", source="folder", path=folder, workers=1)
    rows = tracks("csvnull")
    assert rows["a"]["label"] is None and rows["b"]["label"] is None and rows["c"]["label"] == "rock"
    assert rows["b"]["take"] is None and rows["c"]["take"] == 3  # still a number column
    assert rows["a"]["note"] is None


def test_a_blank_string_from_any_source_is_null(tmp_path):
    write_clip(tmp_path / "a.wav", seed=1)
    write_clip(tmp_path / "b.wav", seed=2)
    ranking = tmp_path / "ranking.json"
    ranking.write_text('[[{"audio_file": "a.wav", "label": "", "singer": " "}, {"audio_file": "b.wav", "label": "x"}]]')
    ingest("blank", source="ranking_json", path=ranking, workers=1)
    rows = tracks("blank")
    assert rows["a"]["label"] is None and rows["a"]["singer"] is None and rows["b"]["label"] == "x"


def test_same_stem_files_get_extension_qualified_ids_and_a_note(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "tone.mp3", fmt="mp3", seed=1)
    write_clip(folder / "tone.m4a", fmt="m4a", seed=2)
    write_clip(folder / "other.wav", seed=3)
    result = ingest("stems", source="folder", path=folder, workers=1)
    assert result.written == 3 and not result.skipped and not result.flagged
    rows = tracks("stems")
    assert set(rows) == {"tone.mp3", "tone.m4a", "other"}
    assert rows["tone.mp3"]["format"] == "mp3" and rows["tone.m4a"]["format"] == "m4a"
    notes = {n["track_id"]: n["note"] for n in result.notes}
    assert set(notes) == {"tone.mp3", "tone.m4a"} and "tone" in notes["tone.mp3"]
    again = ingest("stems", source="folder", path=folder, workers=1, force=True)
    assert set(tracks("stems")) == set(rows) and again.written == 3


def test_a_csv_row_naming_a_file_without_its_extension_is_reported_with_candidates(tmp_path):
    folder = tmp_path / "in"
    write_clip(folder / "tone.mp3", fmt="mp3", seed=1)
    write_clip(folder / "tone.m4a", fmt="m4a", seed=2)
    write_clip(folder / "x.wav", seed=3)
    (folder / "metadata.csv").write_text("track_id,audio_path\nt,tone\nx,x.wav\n")
    result = ingest("csvstem", source="folder", path=folder, workers=1)
    (skip,) = result.skipped
    assert "row 2" in skip["reason"] and "tone.m4a" in skip["reason"] and "tone.mp3" in skip["reason"]


# --- (4) content changes that keep size and mtime ------------------------------------------


def rewrite_keeping_size_and_mtime(path: Path, seed: int) -> None:
    before = path.stat()
    data = path.read_bytes()
    write_clip(path, seed=seed)
    assert path.read_bytes() != data and path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert after.st_mtime_ns == before.st_mtime_ns
    if after.st_ctime_ns == before.st_ctime_ns and after.st_ino == before.st_ino:
        pytest.skip("this filesystem's ctime is too coarse to see a rewrite (the documented limit)")


def test_a_same_size_same_mtime_rewrite_is_detected_by_the_folder_fingerprint(tmp_path):
    folder = tmp_path / "in"
    clip = write_clip(folder / "a.wav", seed=1)
    first = ingest("fp", source="folder", path=folder, workers=1)
    old_sha = tracks("fp")["a"]["sha256"]
    rewrite_keeping_size_and_mtime(clip, seed=2)
    second = ingest("fp", source="folder", path=folder, workers=1)
    assert first.status == "written" and second.status == "written"
    assert tracks("fp")["a"]["sha256"] != old_sha


def test_eatd_and_ranking_json_fingerprints_see_such_a_rewrite(tmp_path):
    subject = tmp_path / "EATD-Corpus" / "t_1"
    for affect in ("positive", "neutral", "negative"):
        write_clip(subject / f"{affect}.wav", seed=len(affect))
    (subject / "label.txt").write_text("45")
    eatd_cfg = eatd.Config(path=tmp_path / "EATD-Corpus")
    ranking = tmp_path / "ranking.json"
    ranking.write_text('[["EATD-Corpus/t_1/neutral.wav", "EATD-Corpus/t_1/positive.wav"]]')
    ranking_cfg = ranking_json.Config(path=ranking)
    before = eatd.fingerprint(eatd_cfg), ranking_json.fingerprint(ranking_cfg)
    rewrite_keeping_size_and_mtime(subject / "neutral.wav", seed=99)
    assert eatd.fingerprint(eatd_cfg) != before[0]
    assert ranking_json.fingerprint(ranking_cfg) != before[1]
