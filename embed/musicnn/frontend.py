"""musicnn input features: log-compressed mel spectrogram patches, without librosa.

Reproduces what ``musicnn.extractor.batch_data`` feeds the network::

    librosa.feature.melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96).T
    -> astype(float16) -> log10(10000 * x + 1) -> non-overlapping 187-frame patches

with librosa >= 0.10 defaults: ``center=True`` with ``pad_mode="constant"`` (zero
padding; librosa < 0.10 used ``"reflect"``), a periodic Hann window, power 2, and the
Slaney mel scale with Slaney (area) normalisation over 0 Hz .. sr/2.

Deviation from the original: a clip shorter than one 187-frame patch is zero-padded to
one patch instead of yielding nothing, so short real clips still get an embedding.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s at 16 kHz / hop 256, as the models were trained
_STFT_SAMPLE_BUDGET = 1 << 22


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, log above."""
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = freqs / f_sp
    above = freqs >= min_log_hz
    mels[above] = min_log_mel + np.log(freqs[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    above = mels >= min_log_mel
    freqs[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


@functools.lru_cache(maxsize=4)
def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) Slaney-normalised triangular filters, as librosa.filters.mel."""
    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sr / 2]))[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]  # equal area per filter
    # librosa returns float32 filters; rounding here keeps us bit-closer to it
    return weights.astype(np.float32)


def log_mel(waveforms: torch.Tensor, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """(B, samples) float waveforms at 16 kHz -> (B, frames, 96) musicnn log-mel, float32.

    All rows must have the same length; frames = 1 + samples // 256.
    """
    if sr != SAMPLE_RATE:
        raise ValueError(f"musicnn expects {SAMPLE_RATE} Hz audio, got {sr}; resample first")
    x = waveforms.to(torch.float64)  # float64 STFT: float16 rounding below then rarely flips
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64, device=x.device)
    spec = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (B, 257, frames)
    fb = torch.from_numpy(mel_filterbank(sr)).to(x.device, torch.float64)
    mel = torch.matmul(fb, power).transpose(1, 2)  # (B, frames, 96)
    # The original stores the spectrogram as float16 before compressing; we keep that
    # quantisation because the network was trained on it. The compression itself runs in
    # float32, as the reference fixture does: the extractor's literal numpy code stays in
    # float16, where 10000 * x overflows to inf once x > 6.55 (ordinary loud music).
    # Clamping to the float16 maximum keeps unnormalised (e.g. int16-scaled) input finite.
    mel16 = mel.clamp(max=torch.finfo(torch.float16).max).to(torch.float16).to(torch.float32)
    return torch.log10(10000.0 * mel16 + 1.0)


def split_patches(spec: torch.Tensor, patch_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """(frames, 96) -> (n, patch_frames, 96) non-overlapping patches, remainder dropped.

    A spectrogram shorter than one patch is zero-padded to one patch (log10(1) = 0 is
    what silence maps to), unlike the original, which returns no patch at all.
    """
    frames = spec.shape[0]
    if frames < patch_frames:
        spec = torch.nn.functional.pad(spec, (0, 0, 0, patch_frames - frames))
        frames = patch_frames
    n = frames // patch_frames
    return spec[: n * patch_frames].reshape(n, patch_frames, spec.shape[1])


def _mono(waveform: np.ndarray) -> np.ndarray:
    wav = np.asarray(waveform, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"expected a mono 1-D waveform, got shape {wav.shape}; downmix first")
    if wav.size == 0:
        raise ValueError("empty waveform")
    return wav


def mel_patches(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono 16 kHz waveform -> (n_patches, 187, 96) float32 musicnn input patches."""
    wav = torch.as_tensor(_mono(waveform)).reshape(1, -1)
    with torch.inference_mode():
        spec = log_mel(wav, sample_rate)[0]
        return split_patches(spec).numpy()


def mel_patches_batch(waveforms: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[torch.Tensor]:
    """Patches for many clips, one (n_i, 187, 96) float32 tensor per clip, in input order.

    Clips of equal length (the common case for segmented corpora) share one batched STFT.
    """
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(waveforms):
        by_length.setdefault(int(np.asarray(w).size), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(waveforms)
    with torch.inference_mode():
        for length, indices in by_length.items():
            # bound the complex128 STFT buffer (~16 bytes per sample) to ~100 MB per call
            step = max(1, _STFT_SAMPLE_BUDGET // max(length, 1))
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                wav = torch.as_tensor(np.stack([_mono(waveforms[i]) for i in chunk]))
                for i, spec in zip(chunk, log_mel(wav, sample_rate)):
                    out[i] = split_patches(spec)
    return out  # type: ignore[return-value]
