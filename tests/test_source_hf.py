"""The hf source, end to end on datasets built here with `save_to_disk` (no hub), plus offline."""
from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

datasets = pytest.importorskip("datasets")

from ingest import hf  # noqa: E402
from ingest.api import ingest  # noqa: E402
from ingest.source import SourceError  # noqa: E402
from lake import catalog  # noqa: E402
from lake.cli import UsageError  # noqa: E402

GENRES = ["blues", "jazz", "rock"]


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))  # never the user's cache
    datasets.disable_progress_bars()


def clip(path: Path, seed: int, fmt: str = "WAV", seconds: float = 0.5, rate: int = 16000) -> Path:
    noise = np.random.default_rng(seed).normal(0, 0.1, int(seconds * rate)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, noise, rate, format=fmt, subtype="PCM_16")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def saved_dataset(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Four clips (wav + flac) with a ClassLabel genre, a string column and a nested one."""
    files = [
        clip(tmp_path / "src" / "a.wav", 1),
        clip(tmp_path / "src" / "b.flac", 2, fmt="FLAC"),
        clip(tmp_path / "src" / "c.wav", 3, rate=8000),
        clip(tmp_path / "src" / "d.wav", 4),
    ]
    features = datasets.Features({
        "audio": datasets.Value("string"),
        "genre": datasets.ClassLabel(names=GENRES),
        "artist": datasets.Value("string"),
        "source": datasets.Value("string"),  # clashes with the manifest's own `source`
        "words": datasets.Sequence(datasets.Value("string")),  # non-scalar: skipped
    })
    ds = datasets.Dataset.from_dict({
        "audio": [str(f) for f in files],
        "genre": [0, 2, 1, 0],
        "artist": ["ann", "bo", "cy", "di"],
        "source": ["cd", "cd", "radio", "cd"],
        "words": [["x"], [], ["y", "z"], ["w"]],
    }, features=features).cast_column("audio", datasets.Audio())
    directory = tmp_path / "mini_gtzan"
    ds.save_to_disk(str(directory))
    return directory, files


def rows(dataset: str) -> list[dict]:
    return catalog.connect().sql(
        f"SELECT * FROM tracks WHERE dataset = '{dataset}' ORDER BY track_id").to_arrow_table().to_pylist()


def test_saved_dataset_keeps_original_bytes_label_names_and_culture(tmp_path):
    directory, files = saved_dataset(tmp_path)
    result = ingest("mini", source="hf", hf_id=str(directory), label_column="genre",
                    culture_mode="constant", culture_value="west", workers=1)
    assert result.written == 4 and result.skipped == []

    got = rows("mini")
    assert [r["track_id"] for r in got] == [f"mini_gtzan_train_{i:06d}" for i in range(4)]
    assert [r["label"] for r in got] == ["blues", "rock", "jazz", "blues"]
    assert {r["culture"] for r in got} == {"west"} and {r["split"] for r in got} == {"train"}
    assert [r["format"] for r in got] == ["wav", "flac", "wav", "wav"]
    assert [r["sha256"] for r in got] == [sha(f) for f in files], "stored bytes are the original files"
    assert got[2]["sample_rate"] == 8000 and got[0]["duration_s"] == pytest.approx(0.5)
    assert got[1]["source"] == f"hf:{directory}/train/1"
    assert [r["artist"] for r in got] == ["ann", "bo", "cy", "di"]
    assert [r["hf_source"] for r in got] == ["cd", "cd", "radio", "cd"]
    assert got[1]["hf_audio_path"] == "b.flac"
    assert "words" not in got[0] and "genre" not in got[0]

    again = ingest("mini", source="hf", hf_id=str(directory), label_column="genre",
                   culture_mode="constant", culture_value="west", workers=1)
    assert again.status == "unchanged"


def test_limit_takes_the_first_rows(tmp_path):
    directory, files = saved_dataset(tmp_path)
    result = ingest("lim", source="hf", hf_id=str(directory), limit=2, workers=1)
    assert result.written == 2
    got = rows("lim")
    assert [r["sha256"] for r in got] == [sha(f) for f in files[:2]]
    assert all(r["label"] is None for r in got)


def test_dataset_dict_split_id_column_culture_column_streaming(tmp_path):
    files = [clip(tmp_path / "src" / f"{n}.wav", i) for i, n in enumerate(["p", "q", "r"])]
    make = lambda idx: datasets.Dataset.from_dict({  # noqa: E731
        "audio": [str(files[i]) for i in idx],
        "clip_id": [f"clip.{i}" for i in idx],
        "region": ["anatolia", "andes", "bengal"][: len(idx)],
    }).cast_column("audio", datasets.Audio())
    directory = tmp_path / "dd"
    datasets.DatasetDict({"train": make([0]), "test": make([1, 2])}).save_to_disk(str(directory))

    result = ingest("dd", source="hf", hf_id=str(directory), split="test", id_column="clip_id",
                    culture_mode="column", culture_value="region", streaming=True, limit=5, workers=1)
    assert result.written == 2
    got = rows("dd")
    assert [(r["track_id"], r["culture"], r["split"]) for r in got] == [
        ("clip.1", "anatolia", "test"), ("clip.2", "andes", "test")]
    assert [r["sha256"] for r in got] == [sha(files[1]), sha(files[2])]

    with pytest.raises(SourceError, match="no split 'dev'"):
        ingest("dd2", source="hf", hf_id=str(directory), split="dev", workers=1)


def test_bad_options_name_the_key(tmp_path):
    directory, _ = saved_dataset(tmp_path)
    with pytest.raises(UsageError, match="culture_value="):
        ingest("bad", source="hf", hf_id=str(directory), culture_mode="constant", workers=1)
    with pytest.raises(SourceError, match="label_column=mood: .* has no such column"):
        ingest("bad", source="hf", hf_id=str(directory), label_column="mood", workers=1)


def test_offline_hub_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(SourceError) as caught:
        ingest("gtzan", workers=1)
    message = str(caught.value)
    assert time.perf_counter() - started < 10
    assert "sanchit-gandhi/gtzan" in message and "\n" not in message
    assert "just ingest dataset=gtzan source=folder path=DIR" in message


def test_format_sniffing_and_unembedded_paths(tmp_path):
    wav = clip(tmp_path / "x.wav", 7)
    flac = io.BytesIO()
    sf.write(flac, np.zeros(100, dtype=np.float32), 8000, format="FLAC")
    assert hf.sniff_format(wav.read_bytes()) == "wav"
    assert hf.sniff_format(flac.getvalue()) == "flac"
    assert hf.sniff_format(b"OggS\0\0") == "ogg"
    assert hf.sniff_format(b"ID3\x04") == "mp3" and hf.sniff_format(b"\xff\xfb\x90") == "mp3"
    assert hf.sniff_format(b"\0\0\0\x20ftypM4A ") == "m4a"
    assert hf.sniff_format(b"hello") is None
    data, path, why = hf.audio_bytes({"bytes": None, "path": str(wav)})
    assert data == wav.read_bytes() and why is None
    data, _, why = hf.audio_bytes({"bytes": None, "path": "gone/nowhere.wav"})
    assert data is None and "not a local file" in why
