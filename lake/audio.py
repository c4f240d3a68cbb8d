"""Decoding stored clips to float32 samples: one function every stage uses.

libsndfile handles wav/flac/ogg/mp3/aiff without FFmpeg; anything it cannot open (m4a, aac,
mp4, wma, webm) goes through PyAV, converted to planar float by FFmpeg's own resampler so
sample formats (s16, s32p, fltp ...) never leak out of here.
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def decode(data: bytes) -> tuple[np.ndarray, int, str]:
    """Returns (samples [frames, channels] float32, sample_rate, precision hint).

    The precision hint is the libsndfile subtype when known (e.g. PCM_16) and "lossy" for
    FFmpeg-decoded streams; transcoding uses it to keep the original's bit depth.
    """
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            return handle.read(dtype="float32", always_2d=True), handle.samplerate, handle.subtype
    except sf.LibsndfileError:
        pass
    return _decode_av(data)


def _decode_av(data: bytes) -> tuple[np.ndarray, int, str]:
    import av

    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            raise ValueError("container has no audio stream")
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        layout = stream.codec_context.layout.name if channels else "mono"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=stream.codec_context.sample_rate)
        pieces = []
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                pieces.append(converted.to_ndarray())
        for converted in resampler.resample(None):
            pieces.append(converted.to_ndarray())
        if not pieces:
            raise ValueError("no audio frames decoded")
        planar = np.concatenate(pieces, axis=1)
        return np.ascontiguousarray(planar.T, dtype=np.float32), int(stream.codec_context.sample_rate), "lossy"


def to_mono(samples: np.ndarray) -> np.ndarray:
    return samples.mean(axis=1) if samples.ndim == 2 else samples
