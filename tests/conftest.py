"""Shared fixtures: every test gets its own empty lake and a small audio toolbox."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tiny_models


@pytest.fixture(scope="session")
def wav2vec2_dir(tmp_path_factory) -> Path:
    return tiny_models.wav2vec2(tmp_path_factory.mktemp("wav2vec2"))


@pytest.fixture(scope="session")
def hubert_dir(tmp_path_factory) -> Path:
    return tiny_models.hubert(tmp_path_factory.mktemp("hubert"))


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory) -> Path:
    return tiny_models.whisper(tmp_path_factory.mktemp("whisper"))


@pytest.fixture(scope="session")
def clap_dir(tmp_path_factory) -> Path:
    return tiny_models.clap(tmp_path_factory.mktemp("clap"))


@pytest.fixture(autouse=True)
def lake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "lake"
    monkeypatch.setenv("AUDIOLAKE_ROOT", str(root))
    return root


def tone(seconds: float = 0.5, rate: int = 16000, freq: float = 440.0, channels: int = 1,
         seed: int = 0) -> np.ndarray:
    """A sine plus a little seeded noise, so every call with a new seed gives new bytes."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, size=(len(t), channels))
    wave = 0.3 * np.sin(2 * np.pi * freq * t)[:, None] + noise
    return wave.astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """Real encoded bytes for every format the folder source accepts."""
    if fmt == "m4a":
        import av

        buffer = io.BytesIO()
        channels = samples.shape[1] if samples.ndim == 2 else 1
        layout = "mono" if channels == 1 else "stereo"
        with av.open(buffer, "w", format="ipod") as container:
            stream = container.add_stream("aac", rate=rate)
            stream.layout = layout
            planar = np.ascontiguousarray(samples.reshape(len(samples), channels).T)
            for start in range(0, planar.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + 1024]),
                                                   format="fltp", layout=layout)
                frame.sample_rate = rate
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        return buffer.getvalue()
    buffer = io.BytesIO()
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}[fmt]
    sf.write(buffer, samples, rate, format={"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}[fmt],
             subtype=subtype)
    return buffer.getvalue()


def write_clip(path: Path, fmt: str = "wav", seconds: float = 0.5, rate: int = 16000,
               channels: int = 1, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(tone(seconds, rate, channels=channels, seed=seed), rate, fmt))
    return path
