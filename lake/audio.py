"""Decoding stored clips to float32 samples: one function every stage uses.

libsndfile handles wav/flac/ogg/mp3/aiff without FFmpeg; anything it cannot open (m4a, aac,
mp4, wma, webm) goes through PyAV, converted to planar float by FFmpeg's own resampler so
sample formats (s16, s32p, fltp ...) never leak out of here.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def decode(data: bytes, max_seconds: float | None = None) -> tuple[np.ndarray, int, str]:
    """Returns (samples [frames, channels] float32, sample_rate, precision hint).

    `max_seconds` stops decoding once that much audio is out: cropping the first 30 s of an
    hour-long recording should not decode (and hold) the whole hour.
    The precision hint is the libsndfile subtype when known (e.g. PCM_16) and "lossy" for
    FFmpeg-decoded streams; transcoding uses it to keep the original's bit depth.
    """
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            frames = -1 if max_seconds is None else int(np.ceil(max_seconds * handle.samplerate))
            return handle.read(frames, dtype="float32", always_2d=True), handle.samplerate, handle.subtype
    except sf.LibsndfileError:
        pass
    return _decode_av(data, max_seconds)


def _decode_av(data: bytes, max_seconds: float | None = None) -> tuple[np.ndarray, int, str]:
    import av

    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            raise ValueError("container has no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        layout = stream.codec_context.layout.name if channels else "mono"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=stream.codec_context.sample_rate)
        rate = int(stream.codec_context.sample_rate)
        limit = None if max_seconds is None else int(np.ceil(max_seconds * rate))
        pieces, decoded = [], 0
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                pieces.append(converted.to_ndarray())
                decoded += pieces[-1].shape[1]
            if limit is not None and decoded >= limit:
                break
        else:
            for converted in resampler.resample(None):
                pieces.append(converted.to_ndarray())
        if not pieces:
            raise ValueError("no audio frames decoded")
        planar = np.concatenate(pieces, axis=1)[:, :limit]
        return np.ascontiguousarray(planar.T, dtype=np.float32), rate, "lossy"


def to_mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1) if samples.ndim == 2 else samples
