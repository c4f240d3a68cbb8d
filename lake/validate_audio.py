"""Clips that decode fine but hold no usable signal: the rules, in one place.

Ingest measures every clip's peak and RMS level while it decodes the clip anyway
(ingest/probe.py) and stores them as the tracks columns `peak_db` and `rms_db` (dBFS: 0 is
digital full scale; `SILENCE_DB` stands for digital silence, where the logarithm has no value).
The ingest report and `just validate` both judge those stored numbers with `flags` below, so
the two never disagree and validate never decodes audio again.

The flags, and why these thresholds:
- `silent` ("all silence"): peak below −60 dBFS. Nothing in the clip rises above the noise
  floor of an ordinary recording chain (a 16-bit file's smallest step is −90 dBFS, so this is
  far above rounding, and far below any audible recording).
- `flat` ("very low dynamic range"): peak within 2 dB of the RMS level (crest factor), and
  not silent. A constant DC offset, or a square-wave-like signal, sits there; a pure sine
  has 3.01 dB, speech and music 10–20 dB over a whole clip.
- `short` ("very short"): under 0.1 s, a few samples or one short buzz: too little for any
  backbone's frame (most need 20–25 ms per frame and pool several).
Flagged clips are kept (a flag asks a person to look); `strict=true` ingest refuses them.
"""
from __future__ import annotations

import math

import numpy as np

SILENCE_DB = -200.0        # stored for a clip whose samples are all exactly zero
SILENT_PEAK_DB = -60.0
FLAT_CREST_DB = 2.0
SHORT_SECONDS = 0.1

DESCRIPTIONS = {"silent": "all silence", "flat": "very low dynamic range", "short": "very short"}


def to_db(amplitude: float) -> float:
    """Full-scale amplitude (1.0 = 0 dBFS) in dBFS, with digital silence as SILENCE_DB."""
    return max(SILENCE_DB, 20 * math.log10(amplitude)) if amplitude > 0 else SILENCE_DB


def flags(peak_db, rms_db, duration_s) -> dict[str, np.ndarray]:
    """Flag name → boolean mask, for arrays (or scalars) of stored levels; NaN/None (a clip
    ingested before levels were measured) is never flagged for level, only for duration."""
    peak = np.asarray(peak_db, dtype=np.float64)
    rms = np.asarray(rms_db, dtype=np.float64)
    duration = np.asarray(duration_s, dtype=np.float64)
    silent = peak < SILENT_PEAK_DB
    return {
        "silent": silent,
        "flat": ~silent & (peak - rms < FLAT_CREST_DB),
        "short": duration < SHORT_SECONDS,
    }


def clip_flags(peak_db: float, rms_db: float, duration_s: float) -> list[str]:
    """The flag names of one clip, in DESCRIPTIONS order."""
    return [name for name, mask in flags(peak_db, rms_db, duration_s).items() if bool(mask)]


def describe(names: list[str], peak_db: float, rms_db: float, duration_s: float) -> str:
    """One line for a report: what each flag means, with the measured number and the limit."""
    parts = []
    for name in names:
        if name == "silent":
            parts.append(f"all silence (peak {peak_db:.1f} dBFS, below {SILENT_PEAK_DB:g})")
        elif name == "flat":
            parts.append(f"very low dynamic range (peak {peak_db:.1f} dBFS is {peak_db - rms_db:.2f} dB "
                         f"above RMS, under {FLAT_CREST_DB:g})")
        elif name == "short":
            parts.append(f"very short ({duration_s * 1000:.1f} ms, under {SHORT_SECONDS * 1000:g} ms)")
    return "; ".join(parts)
