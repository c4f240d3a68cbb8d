"""`logmel`: a deterministic signal-processing baseline, no weights.

Per clip: a 64-band log-mel spectrogram (22.05 kHz, 1024-point FFT, hop 512), summarised by
the mean and standard deviation of each band and of its first time-difference (256 values).
This is the classic "bag of frames" baseline a learned backbone has to beat; it is cheap
enough to run on anything and changes only when this file's VERSION does.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from embed.backbone import Provenance, package_versions, select_layers
from embed.musicnn.frontend import mel_filterbank

VERSION = "1"
SAMPLE_RATE = 22050
N_FFT = 1024
HOP = 512
N_MELS = 64
LAYERS = ("stats",)


class LogMel:
    name = "logmel"
    sample_rate = SAMPLE_RATE
    dim = 4 * N_MELS
    precisions = ("fp32",)  # a few matrix products on CPU: bf16 would only lose digits

    def __init__(self, layers: str = "", **_ignored) -> None:
        self.layers = select_layers(layers, LAYERS, default="stats")
        self._filters = torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS))
        self._window = torch.hann_window(N_FFT, periodic=True)

    def _one(self, waveform: np.ndarray) -> np.ndarray:
        wave = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        if wave.numel() < N_FFT:  # shorter than one frame: pad so every clip gets a vector
            wave = torch.nn.functional.pad(wave, (0, N_FFT - wave.numel()))
        spec = torch.stft(wave, N_FFT, HOP, window=self._window, center=True, return_complex=True)
        logmel = torch.log(self._filters @ spec.abs().square() + 1e-6)  # (mels, frames)
        delta = torch.diff(logmel, dim=1) if logmel.shape[1] > 1 else torch.zeros_like(logmel)
        parts = [logmel.mean(1), logmel.std(1, unbiased=False), delta.mean(1), delta.std(1, unbiased=False)]
        return torch.cat(parts).numpy()

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        # fp32 even inside a caller's autocast region, so the recorded precision is what ran
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):
            vectors = np.stack([self._one(w) for w in waveforms]).astype(np.float32)
        return {"stats": vectors}

    def provenance(self) -> Provenance:
        return Provenance(
            model_id="logmel", revision=f"v{VERSION}", sample_rate=SAMPLE_RATE, dim=self.dim,
            layers=self.layers, pooling="mean and std over frames of log-mel and its delta",
            options={"n_fft": str(N_FFT), "hop": str(HOP), "n_mels": str(N_MELS)},
            packages=package_versions(),
        )


PRECISIONS = LogMel.precisions


def load(request) -> LogMel:
    """The registry's loader (embed/registry.py)."""
    return LogMel(layers=request.layers)
