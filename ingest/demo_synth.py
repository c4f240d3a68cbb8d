"""Vectorised numpy synthesis behind the demo corpus (`ingest.demo`).

Every voice is a monophonic *part*: a list of notes (start, duration, MIDI pitch, velocity)
rendered through per-note wavetables, so a part costs a handful of whole-array numpy
operations (a phase `cumsum`, one table gather, an envelope) however many notes it has.
Percussion is noise/sine one-shots placed at onsets; space is one FFT convolution with a
synthetic decaying-noise impulse response, with the brightness EQ folded into the same FFT.

What carries each label (so that heads have something to learn):

* culture: the tuning/scale and its accompaniment -- 12-TET diatonic triads changing every
  half bar (west); quarter-tone maqam scales, an ostinato on the jins tones and an
  octave-down heterophonic doubling (maqam); a tanpura drone on Sa/Pa under a melody that
  glides into every note with andolan oscillation (raga); anhemitonic pentatonic melody
  over open fourths/fifths (pentatonic). The band's instruments come from the genre; the
  culture-specific parts (tanpura, doubling) are there for their pitch content.
* genre: tempo, meter, drum pattern and instrument timbre (see `GENRES`).
* affect: mode, tempo factor, register, brightness EQ and loudness (see `AFFECT`).
* singing: a formant-filtered glottal source with vibrato, per singer (see `SINGERS`);
  the singer's pitch error is a per-note detuning plus a slow wobble.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

N_TAB = 2048  # wavetable length: 1023 harmonics available, nearest-sample lookup is clean enough
CTRL = 16  # control-rate hop (samples) for pitch and envelopes
K_HARM = 96  # harmonics per table; enough for a 40 Hz bass to reach ~3.8 kHz

CULTURES = ("west", "maqam", "raga", "pentatonic")
LABELS = ("ambient", "rock", "electronic", "folk")
AFFECTS = ("negative", "neutral", "positive")

# Semitones above the tonic. Mode is one of the affect cues, so scales vary with affect;
# every maqam scale keeps 3/4-tone steps, every pentatonic one stays anhemitonic.
SCALES = {
    "west": {"negative": (0, 2, 3, 5, 7, 8, 10), "neutral": (0, 2, 3, 5, 7, 9, 10),
             "positive": (0, 2, 4, 5, 7, 9, 11)},  # natural minor, dorian, major
    "maqam": {"negative": (0, 1.5, 3, 5, 7, 8, 10), "neutral": (0, 2, 3.5, 5, 7, 9, 10.5),
              "positive": (0, 2, 3.5, 5, 7, 9, 10.5)},  # bayati, rast, rast
    "raga": {"negative": (0, 1, 3, 5, 7, 8, 10), "neutral": (0, 1, 4, 5, 7, 8, 11),
             "positive": (0, 2, 4, 6, 7, 9, 11)},  # bhairavi, bhairav, yaman
    "pentatonic": {"negative": (0, 3, 5, 7, 10), "neutral": (0, 2, 4, 7, 9),
                   "positive": (0, 2, 4, 7, 9)},  # minor / major pentatonic
}
SCALE_NAMES = {
    "west": {"negative": "a natural minor key", "neutral": "the dorian mode", "positive": "a major key"},
    "maqam": {"negative": "maqam bayati", "neutral": "maqam rast", "positive": "maqam rast"},
    "raga": {"negative": "raga bhairavi", "neutral": "raga bhairav", "positive": "raga yaman"},
    "pentatonic": {"negative": "a minor pentatonic scale", "neutral": "a major pentatonic scale",
                   "positive": "a major pentatonic scale"},
}

# bpm, beats per bar, melody note lengths (beats), lead timbre, reverb RT60 (s), wet level
GENRES = {
    "ambient": dict(bpm=66.0, meter=4, beats=(1, 1.5, 2, 3), lead="soft", rt60=2.4, wet=0.5),
    "rock": dict(bpm=118.0, meter=4, beats=(0.5, 1, 1, 1.5, 2), lead="saw", rt60=0.7, wet=0.12),
    "electronic": dict(bpm=128.0, meter=4, beats=(0.5, 0.5, 1, 1, 2), lead="square", rt60=1.0, wet=0.18),
    "folk": dict(bpm=92.0, meter=3, beats=(0.5, 1, 1, 2, 3), lead="pluck", rt60=0.8, wet=0.2),
}
# tempo factor, tonic shift (semitones), low-pass corner (Hz, None = open + presence shelf),
# loudness target (dBFS RMS, +-1 dB jitter; the -1 dBFS peak limit pulls ~20% of the
# positive clips, the percussive ones, down by up to 2 dB).
AFFECT = {
    "negative": (0.88, -2, 1800.0, -25.0),
    "neutral": (1.00, 0, 4000.0, -21.0),
    "positive": (1.12, 2, None, -17.0),
}

# Singers: formant scale (vocal-tract length), octave above the male register, breathiness,
# vibrato rate (Hz) and depth (semitones), skill = typical pitch error in cents (lower = better).
SINGERS = (
    (0.92, 0, 0.02, 5.3, 0.14, 16.0),
    (1.16, 1, 0.10, 5.9, 0.20, 7.0),
    (0.86, 0, 0.05, 4.9, 0.10, 28.0),
    (1.22, 1, 0.03, 6.3, 0.24, 10.0),
    (1.00, 0, 0.14, 5.6, 0.16, 35.0),
    (1.10, 1, 0.06, 5.1, 0.18, 22.0),
    (0.95, 0, 0.00, 6.0, 0.22, 5.0),
    (1.28, 1, 0.12, 5.5, 0.12, 31.0),
    (0.89, 0, 0.08, 6.5, 0.16, 9.0),
    (1.19, 1, 0.01, 4.8, 0.20, 19.0),
)
# Vowel formants (Hz) for an average adult tract: a, e, i, o, u.
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010],
                   [570, 840, 2410], [300, 870, 2240]], dtype=np.float64)


def midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def harmonics(kind: str, f0: np.ndarray, sr: int, formants: np.ndarray | None = None) -> np.ndarray:
    """Harmonic amplitudes (notes, K_HARM) of a timbre, zeroed above 0.45*sr (no aliasing)."""
    k = np.arange(1, K_HARM + 1, dtype=np.float64)[None, :]
    f = f0[:, None] * k
    if kind == "saw":
        a = 1.0 / k
    elif kind == "square":
        a = (k % 2) / k
    elif kind == "soft":  # near-sine flute/pad
        a = k ** -2.5
    elif kind == "pad":
        a = k ** -1.5 * (k <= 10)
    elif kind == "bass":
        a = k ** -2.0
    elif kind == "pluck":  # string plucked at 1/5 of its length: every 5th harmonic missing
        a = np.abs(np.sin(np.pi * k * 0.2)) / k ** 1.1
    elif kind == "tanpura":  # rich string with the jawari "buzz" hump around 2 kHz
        a = k ** -0.8 * (1.0 + 3.0 * np.exp(-(((f - 2200.0) / 900.0) ** 2)))
    elif kind == "voice":  # glottal source (-6 dB/oct after radiation) through 3 formants
        F = formants[:, None, :]
        B = 50.0 + 0.06 * F  # bandwidths widen with formant frequency
        res = np.array([1.0, 0.6, 0.3]) / (1.0 + ((f[..., None] - F) / (B / 2)) ** 2)
        a = (0.02 + res.sum(-1)) / k
    else:
        raise ValueError(kind)
    return a * (f < 0.45 * sr)


def wavetables(amps: np.ndarray) -> np.ndarray:
    """One single-cycle table per note from its harmonic amplitudes, RMS-normalised."""
    spec = np.zeros((amps.shape[0], N_TAB // 2 + 1), dtype=np.complex128)
    spec[:, 1:K_HARM + 1] = -1j * amps  # sine phases: saw/square keep their familiar shape
    tab = np.fft.irfft(spec, n=N_TAB, axis=1)
    tab /= np.sqrt(2.0 * (tab ** 2).mean(1, keepdims=True)) + 1e-12
    return tab.astype(np.float32)


def render(sr, T, start, dur, pitch, vel, kind, att=0.01, tau=0.0, sus=1.0, rel=0.08,
           glide=0.0, vib=None, cents_note=None, wobble=None, formants=None):
    """Render one monophonic part; returns (signal, envelope), both float32 of length T.

    Notes must be sorted by start: a note is cut by the next one (its release only sounds
    into a gap). `glide` slides from the previous pitch (gamaka, portamento), `vib` = (rate
    Hz, depth semitones, onset delay s), `cents_note` detunes each note and `wobble` =
    (knots in cents, knots per second) adds a slow pitch drift (a singer's inaccuracy).

    Pitch and envelope run at a control rate of sr/CTRL (onsets snap to that grid, 0.7 ms at
    22.05 kHz); only the phase ramp, the table gather and the envelope ramp are per sample,
    computed on a (frames, CTRL) view so there is no per-sample Python and little numpy.
    """
    H = CTRL
    start, dur, pitch, vel = (np.asarray(a, dtype=np.float64) for a in (start, dur, pitch, vel))
    Tc = -(-T // H)
    s = np.round(start * sr / H).astype(np.int64)
    keep = (s < Tc) & np.r_[True, np.diff(s) > 0]
    s, dur, pitch, vel = s[keep], dur[keep], pitch[keep], vel[keep]
    formants = None if formants is None else formants[keep]
    cents_note = None if cents_note is None else np.asarray(cents_note)[keep]
    if len(s) == 0:
        z = np.zeros(T, np.float32)
        return z, z
    marks = np.zeros(Tc, np.int64)
    marks[s[1:]] = 1
    idx = np.cumsum(marks)  # note index of every frame (frames before the first note: 0)
    k = np.arange(Tc)
    tin = (k - s[idx]) * (H / sr)  # time since the note's onset (negative before the first)
    p = pitch[idx]
    if glide > 0:
        prev = np.concatenate([pitch[:1], pitch[:-1]])[idx]
        g = np.clip(tin / glide, 0.0, 1.0)
        p = prev + (p - prev) * g * g * (3.0 - 2.0 * g)
    if vib is not None:
        rate, depth, delay = vib
        p = p + depth * np.sin(2 * np.pi * rate * k * H / sr) * np.clip((tin - delay) / 0.2, 0.0, 1.0)
    if cents_note is not None:
        p = p + cents_note[idx] / 100.0
    if wobble is not None:
        knots, rate = wobble
        p = p + np.interp(k * H / sr, np.arange(len(knots)) / rate, knots) / 100.0
    inc = midi_hz(p) * (H * N_TAB / sr)  # table samples advanced per frame
    ph0 = (np.concatenate([[0.0], np.cumsum(inc)[:-1]]) % N_TAB).astype(np.float32)
    ramp = np.arange(H, dtype=np.float32) / H
    j = (ph0[:, None] + ramp * inc.astype(np.float32)[:, None]).astype(np.int32) & (N_TAB - 1)
    tabs = wavetables(harmonics(kind, midi_hz(pitch), sr, formants))
    y = tabs.ravel()[(idx * N_TAB).astype(np.int32)[:, None] + j]

    def envelope(t):
        e = np.clip(t / att, 0.0, 1.0)
        if tau > 0:
            e *= sus + (1.0 - sus) * np.exp(-np.maximum(t, 0.0) / tau)
        return (e * np.clip((dur[idx] + rel - t) / rel, 0.0, 1.0) * vel[idx]).astype(np.float32)

    e0, e1 = envelope(tin), envelope(tin + H / sr)  # each frame ramps from e0 to e1
    env = (e0[:, None] + (e1 - e0)[:, None] * ramp).ravel()[:T]
    return (y.ravel()[:T] * env), env


def place(T, shot, onsets, gains, sr):
    """Sum a one-shot at onset times (s); a loop over hits, not samples."""
    out = np.zeros(T, np.float32)
    for t0, g in zip(onsets, gains):
        a = int(round(t0 * sr))
        if 0 <= a < T:
            m = min(len(shot), T - a)
            out[a:a + m] += g * shot[:m]
    return out


def drum_shots(rng, sr):
    """Kick, snare, closed hat, open hat, clap: short sine/noise one-shots, fresh noise per clip."""
    def t(sec):
        return np.arange(int(sec * sr)) / sr
    tk = t(0.35)
    kick = np.sin(2 * np.pi * np.cumsum(48 + 100 * np.exp(-tk / 0.03)) / sr) * np.exp(-tk / 0.16)
    ts = t(0.25)
    snare = np.diff(rng.standard_normal(len(ts) + 1)) * 0.5 * np.exp(-ts / 0.09) \
        + 0.6 * np.sin(2 * np.pi * 190 * ts) * np.exp(-ts / 0.05)
    th = t(0.25)
    hiss = np.diff(rng.standard_normal(len(th) + 2), 2) * 0.3
    hat, ohat = hiss * np.exp(-th / 0.025), hiss * np.exp(-th / 0.09)
    tc = t(0.3)
    burst = sum(np.clip((tc - d) / 0.001, 0, 1) * np.exp(-np.maximum(tc - d, 0) / tau)
                for d, tau in ((0.0, 0.012), (0.011, 0.012), (0.022, 0.09)))  # three hands, a tail
    clap = np.diff(rng.standard_normal(len(tc) + 1)) * 0.5 * burst
    return {k: v.astype(np.float32) for k, v in
            dict(kick=kick, snare=snare, hat=hat, ohat=ohat, clap=clap).items()}


@lru_cache(maxsize=32)
def _room(label: str, room: int, sr: int, nfft: int) -> np.ndarray:
    """Spectrum of a genre's reverb: a decaying-noise impulse response (RT60 from GENRES),
    highs damped. Four fixed rooms per genre, cached: a per-clip IR would double the FFTs."""
    rt60 = GENRES[label]["rt60"]
    rng = np.random.default_rng([7, LABELS.index(label), room])
    ti = np.arange(int(min(rt60, 1.5) * sr)) / sr
    ir = rng.standard_normal(len(ti)) * np.exp(-6.9 * ti / rt60)
    ir[: int(0.015 * sr)] = 0.0  # pre-delay keeps the dry onset crisp
    ir /= np.sqrt((ir ** 2).sum())
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    return (np.fft.rfft(ir, nfft) / (1.0 + (f / 3000.0) ** 2)).astype(np.complex64)


@lru_cache(maxsize=8)
def _eq(corner: float | None, sr: int, nfft: int) -> np.ndarray:
    """Brightness: a 4th-order low-pass at `corner`, or open with a +4 dB presence shelf."""
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    if corner is None:
        return (1.0 + 0.6 / (1.0 + (2500.0 / np.maximum(f, 1.0)) ** 2)).astype(np.float32)
    return (1.0 / np.sqrt(1.0 + (f / corner) ** 4)).astype(np.float32)


def space(x, rng, sr, label, corner):
    """Reverb and brightness EQ in one FFT convolution (scipy.fft: numpy's float32 rfft is ~3x slower)."""
    import scipy.fft as sfft  # imported here: every ingest imports this module, few generate demo audio

    nfft = sfft.next_fast_len(len(x) + int(1.5 * sr), real=True)
    H = 1.0 + GENRES[label]["wet"] * _room(label, int(rng.integers(4)), sr, nfft)
    return sfft.irfft(sfft.rfft(x, nfft) * H * _eq(corner, sr, nfft), nfft)[: len(x)].astype(np.float32)


# ---------------------------------------------------------------- arrangement

# Lead envelopes per genre: attack, decay tau, sustain, release (s).
