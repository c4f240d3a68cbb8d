"""Decode-check one clip: fully decode it once, report duration, rate and channels.

Decoding the whole clip (not just the header) is what catches truncated and corrupt files;
libsndfile quietly shortens a truncated WAV to the bytes present, so RIFF/RF64 sizes are also
checked against the header's declared data size.

The same pass measures the clip's peak and RMS level (`peak_db`, `rms_db`), so silent or flat
clips are flagged (lake.validate_audio) without a second decode.
"""
from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
from lake.errors import one_line
from lake.validate_audio import to_db

# Decoded by libsndfile (MP3 since libsndfile 1.1); everything else goes through FFmpeg (PyAV).
SOUNDFILE_FORMATS = {"wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "au", "w64", "caf"}
AUDIO_EXTENSIONS = SOUNDFILE_FORMATS | {"m4a", "aac", "mp4", "wma", "webm", "mka"}
_BLOCK_FRAMES = 1 << 20
_NATIVE_DTYPE = {"PCM_S8": "int16", "PCM_U8": "int16", "PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32",
                 "DOUBLE": "float64"}


class BadAudio(Exception):
    """The clip cannot be used; the message is the reason shown in the ingest report."""


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float
    sample_rate: int
    channels: int
    frames: int
    peak_db: float = 0.0  # dBFS over every sample of every channel
    rms_db: float = 0.0


class _Levels:
    """Peak and mean square accumulated block by block, in full-scale units (1.0 = 0 dBFS)."""

    def __init__(self) -> None:
        self.peak, self.squares, self.samples = 0.0, 0.0, 0

    def add(self, block: np.ndarray) -> None:
        flat = block.reshape(-1)
        if not flat.size:
            return
        scale = 1.0
        if flat.dtype == np.uint8:  # FFmpeg's u8: unsigned, silence at 128
            flat, scale = flat.astype(np.int16) - 128, 128.0
        elif flat.dtype.kind == "i":
            scale = float(2 ** (8 * flat.dtype.itemsize - 1))
        values = flat if flat.dtype.kind == "f" else flat.astype(np.float32)
        self.peak = max(self.peak, float(max(values.max(), -values.min())) / scale)
        self.squares += float(np.dot(values, values)) / scale**2
        self.samples += flat.size

    def info(self, frames: int, rate: int, channels: int) -> AudioInfo:
        rms = math.sqrt(self.squares / self.samples) if self.samples else 0.0
        return AudioInfo(frames / rate, rate, channels, frames, to_db(self.peak), to_db(rms))


def probe(source: bytes | Path, fmt: str) -> AudioInfo:
    """Decodes `source` (the bytes, or a file read in place: no copy of a long recording in
    memory, and libsndfile's own I/O is faster than Python callbacks over a buffer)."""
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    if size == 0:
        raise BadAudio("empty file (0 bytes)")
    fmt = fmt.lower()
    if fmt in ("wav", "wave"):
        with _opened(source) as handle:
            _check_riff_size(handle, size)
    info = _probe_soundfile(source) if fmt in SOUNDFILE_FORMATS else _probe_av(source)
    if info.frames == 0:
        raise BadAudio("no audio frames decoded")
    return info


def _opened(source: bytes | Path) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def _probe_soundfile(source: bytes | Path) -> AudioInfo:
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as handle:
            # Integer PCM is read as integers: a full decode without the float conversion,
            # and no NaN is possible. Float subtypes are read as floats and checked.
            dtype = _NATIVE_DTYPE.get(handle.subtype, "float32")
            frames, levels = 0, _Levels()
            # blocks() allocates a whole block up front: no bigger than the clip (short clips
            # are the common case, and a 1 M-frame buffer per clip was most of their cost).
            blocksize = max(1, min(_BLOCK_FRAMES, handle.frames or _BLOCK_FRAMES))
            for block in handle.blocks(blocksize=blocksize, dtype=dtype, always_2d=True):
                if dtype.startswith("float") and not np.isfinite(block).all():
                    raise BadAudio("decoded samples contain NaN or Inf")
                frames += len(block)
                levels.add(block)
            rate, channels = handle.samplerate, handle.channels
    except BadAudio:
        raise
    except Exception as err:  # libsndfile reports every failure as one error type or another
        raise BadAudio(f"not decodable audio: {one_line(err)}") from None
    return levels.info(frames, rate, channels)


def _probe_av(source: bytes | Path) -> AudioInfo:
    import av  # imported lazily: most collections never need FFmpeg

    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r") as container:
            if not container.streams.audio:
                raise BadAudio("container has no audio stream")
            stream = container.streams.audio[0]
            frames, rate, channels = 0, stream.codec_context.sample_rate, stream.codec_context.channels
            levels = _Levels()
            for frame in container.decode(stream):
                frames += frame.samples
                rate = frame.sample_rate or rate
                levels.add(frame.to_ndarray())
    except BadAudio:
        raise
    except Exception as err:  # FFmpeg raises a family of av.error.* types
        raise BadAudio(f"not decodable audio: {one_line(err)}") from None
    if not rate:
        raise BadAudio("audio stream has no sample rate")
    return levels.info(frames, int(rate), int(channels))


def _check_riff_size(handle: BinaryIO, size: int) -> None:
    """A WAV whose data chunk declares more bytes than the file holds was cut short."""
    head = handle.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return  # not RIFF: let the decoder say what it is
    position, ds64_data_size = 12, None
    while position + 8 <= size:
        handle.seek(position)
        chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
        if chunk_id == b"ds64":
            body = handle.read(16)
            if len(body) == 16:
                ds64_data_size = struct.unpack("<Q", body[8:16])[0]
        if chunk_id == b"data":
            declared = ds64_data_size if chunk_size == 0xFFFFFFFF and ds64_data_size else chunk_size
            available = size - (position + 8)
            # 0 and 0xFFFFFFFF are what streaming writers leave when they never went back
            # to fill the size in; those files are not truncated, just unsized.
            if declared not in (0, 0xFFFFFFFF) and declared > available:
                raise BadAudio(f"truncated: data chunk declares {declared} bytes, file holds {available}")
            return
        position += 8 + chunk_size + (chunk_size & 1)


def sniff_format(data: bytes) -> str | None:
    """The container from the first bytes, for rows whose path has no usable extension."""
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3":
        return "mp3"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if len(data) >= 2 and data[0] == 0xFF:
        if data[1] & 0xF6 == 0xF0:  # 12-bit sync, layer 00: AAC in ADTS
            return "aac"
        if data[1] & 0xE0 == 0xE0 and (data[1] >> 1) & 0x3:  # 11-bit sync, layer I-III: MPEG audio
            return "mp3"
    return None
