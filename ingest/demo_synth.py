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
LEAD_ENV = {"ambient": (0.3, 0.0, 1.0, 0.8), "rock": (0.01, 0.6, 0.6, 0.08),
            "electronic": (0.005, 0.25, 0.5, 0.05), "folk": (0.003, 0.35, 0.0, 0.1)}


def _semis(scale: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """Scale degrees (any integer, octaves wrap) to semitones above the tonic."""
    return scale[deg % len(scale)] + 12.0 * (deg // len(scale))


def _melody(rng, choices, n_beats, L):
    """Onsets/lengths in beats and a bounded stepwise random walk over scale degrees."""
    d = rng.choice(np.asarray(choices, dtype=np.float64), size=int(n_beats / min(choices)) + 2)
    m = int(np.searchsorted(np.cumsum(d), n_beats)) + 1
    d = d[:m]
    steps = rng.choice([-2, -1, 0, 1, 2], p=[0.12, 0.33, 0.1, 0.33, 0.12], size=m)
    deg = rng.choice([0, 2, 4]) + np.cumsum(steps) - steps[0]
    lo, hi = -2, L + 3  # fold the walk back into about an octave and a half
    y = (deg - lo) % (2 * (hi - lo))
    deg = np.where(y > hi - lo, 2 * (hi - lo) - y, y) + lo
    return np.concatenate([[0.0], np.cumsum(d)[:-1]]), d, deg


def _harmony(rng, culture, scale, affect, n_slots):
    """(n_slots, 3) chord tones in semitones: the culture's way of accompanying a melody."""
    if culture == "west":  # functional triads: stacked thirds within the scale
        prog = [(0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4)][rng.integers(4)]
        roots = np.resize(np.array(prog), n_slots)
        return np.stack([_semis(scale, roots + o) for o in (0, 2, 4)], 1)
    if culture == "maqam":  # no chords: an ostinato on the jins tones, neutral steps sounding
        shapes = [[0, 1, 4], [3, 5, 7], [0, 1, 4], [4, 6, 8]] if affect == "negative" \
            else [[0, 2, 4], [4, 6, 7], [0, 2, 4], [3, 5, 7]]  # bayati / rast degrees
        order = [0, 1, 2, 3] if rng.random() < 0.5 else [0, 3, 2, 1]  # from the tonic, either way round
        return _semis(scale, np.resize(np.array(shapes)[order], (n_slots, 3)))
    if culture == "raga":  # the drone is the harmony: Sa and Pa, never changing
        r = np.zeros(n_slots)
    else:  # pentatonic: open fifths/fourths on scale tones
        r = scale[rng.integers(0, len(scale), n_slots)]
    r[0] = 0.0
    pcs = {int(round(v)) % 12 for v in scale}
    fifth = np.array([7.0 if (int(v) + 7) % 12 in pcs else 5.0 for v in r])
    return np.stack([r, r + fifth, r + 12.0], 1)


def _grid(n_bars, bar_s, spb, offsets):
    """Onset times for a per-bar pattern given in beats."""
    return (np.arange(n_bars)[:, None] * bar_s + np.asarray(offsets)[None, :] * spb).ravel()


def render_clip(song_rng, rng, culture, label, affect, tonic, bpm, sr, T,
                singer=None, err_cents=0.0):
    """Render one clip. Returns (dry mix before space/normalisation, info dict).

    `song_rng` draws the musical material (melody, lyrics' vowels, chords) and is seeded
    per song, so every member of a singing group performs the same song; `rng` draws the
    performance (timing, pitch errors, noise) and is seeded per clip.
    """
    G, hum = GENRES[label], (0.0 if label == "electronic" else 0.007)
    spb, meter = 60.0 / bpm, GENRES[label]["meter"]
    bar_s = spb * meter
    n_bars = int(T / sr / bar_s) + 2
    scale = np.asarray(SCALES[culture][affect], dtype=np.float64)
    b0, bl, deg = _melody(song_rng, G["beats"], n_bars * meter, len(scale))
    semis = _semis(scale, deg)
    rest = song_rng.random(len(b0)) < (0.0 if label == "ambient" else 0.1)
    vowels = song_rng.integers(0, len(VOWELS), len(b0))
    # harmony moves every half bar in western and ambient (slow) music, so that a few
    # seconds of audio always hold two chords' worth of the scale
    slot_s = bar_s / 2 if (culture == "west" and meter == 4) or label == "ambient" else bar_s
    harm = _harmony(song_rng, culture, scale, affect, int(np.ceil(n_bars * bar_s / slot_s)))
    fill = song_rng.random(n_bars) < 0.4

    def jit(t):  # human timing; sorted order survives because notes are >= 0.2 s apart
        return np.maximum(t + rng.normal(0.0, hum, len(t)), 0.0) if hum else t

    parts, info = [], {}
    mt, md = jit(b0 * spb), bl * spb * 0.95
    vel = np.where(rest, 0.0, rng.uniform(0.8, 1.0, len(b0)))
    raga = culture == "raga"
    glide = 0.18 if raga else 0.0  # gamaka: slide into every note
    # The lead instrument plays the melody in tune; under a singer it drops back to a quiet
    # doubling (as in most arrangements), which also makes the singer's errors audible as clashes.
    lead = 0.5 if singer is None else 0.2
    att, tau, sus, rel = LEAD_ENV[label]
    vib = (3.2, 0.3, 0.1) if raga else ((5.5, 0.1, 0.2) if label == "rock" else None)  # andolan
    y, _ = render(sr, T, mt, md, tonic + 12 + semis, vel, G["lead"], att, tau, sus, rel, glide, vib)
    parts.append(lead * y)
    if culture == "maqam":  # heterophony: an oud-like doubling an octave down
        y, _ = render(sr, T, mt + 0.02, md, tonic + semis, vel, "pluck", 0.003, 0.4, 0.2, 0.1, 0.0)
        parts.append(0.6 * lead * y)
    if singer is not None:
        fs, octave, breath, vrate, vdepth, _ = SINGERS[singer]
        target = tonic + 12.0 * octave + semis
        cents_note = rng.normal(0.0, 0.8 * err_cents, len(b0))  # detuned notes
        knots = rng.normal(0.0, 0.6 * err_cents, int(T / sr * 3) + 2)  # slow wobble, 3 Hz knots
        y, env = render(sr, T, mt, md, target, vel, "voice", 0.06, 0.0, 1.0, 0.12,
                        0.18 if raga else 0.04, (vrate, vdepth, 0.15), cents_note, (knots, 3.0),
                        VOWELS[vowels] * fs)
        y = y + breath * 1.5 * env * np.diff(rng.standard_normal(T + 1)).astype(np.float32)
        parts.append(0.45 * y)
        info.update(voice=y, notes=(mt, md, target, vel))
    if raga:  # tanpura: low Sa re-plucked every cycle; Pa and middle Sa alternate between
        cyc = rng.uniform(1.2, 1.6)
        for off, step, steps in ((0.0, cyc, [-12.0]), (cyc / 4, cyc / 2, [-5.0, 0.0])):
            t = np.arange(off, T / sr, step)
            y, _ = render(sr, T, t, np.full(len(t), step), tonic + np.resize(steps, len(t)),
                          np.ones(len(t)), "tanpura", 0.005, 0.8, 0.35, 0.2)
            parts.append(0.3 * y)
    parts += _band(rng, label, tonic, harm, slot_s, n_bars, bar_s, spb, sr, T, jit, fill)
    return np.sum(parts, axis=0), info


def _band(rng, label, tonic, harm, slot_s, n_bars, bar_s, spb, sr, T, jit, fill):
    """Accompaniment and drums for a genre; `harm[k]` are the chord tones of the k-th
    `slot_s`-long harmonic slot (half a bar in the west, a bar elsewhere)."""
    def chord(t):
        return harm[np.minimum((t / slot_s + 1e-6).astype(np.int64), len(harm) - 1)]

    def part(t, length, pitch, kind, *env, jitter=True):
        return render(sr, T, jit(t) if jitter else t, np.full(len(t), length), pitch, np.ones(len(t)),
                      kind, *env)[0]

    out = []
    if label == "ambient":  # sustained pads, one part per chord tone, soft low root, no drums
        t = np.arange(0.0, n_bars * bar_s, slot_s)
        out += [0.2 * part(t, slot_s, tonic + chord(t)[:, v], "pad", 0.8, 0.0, 1.0, 1.0, jitter=False)
                for v in range(3)]
        low = part(t, slot_s, tonic - 12 + chord(t)[:, 0], "soft", 0.5, 0.0, 1.0, 1.0, jitter=False)
        return out + [0.25 * low]
    shots = drum_shots(rng, sr)
    if label == "rock":  # distorted riff over the chord tones in parallel fifths, backbeat
        t = _grid(n_bars, bar_s, spb, np.arange(0, 4, 0.5))
        riff = chord(t)[np.arange(len(t)), np.resize([0, 0, 1, 0, 2, 0, 1, 2], len(t))]
        g = sum(part(t, 0.45 * spb, tonic - 12 + riff + o, "saw", 0.005, 0.15, 0.5, 0.03) for o in (0.0, 7.0))
        out.append(0.25 * np.tanh(3.0 * g))
        t = _grid(n_bars, bar_s, spb, np.arange(4))
        out.append(0.4 * part(t, 0.9 * spb, tonic - 24 + chord(t)[:, 0], "bass", 0.005, 0.3, 0.6, 0.05))
        kicks = np.sort(np.r_[_grid(n_bars, bar_s, spb, [0, 2]), np.flatnonzero(fill) * bar_s + 2.5 * spb])
        hits = [("kick", kicks, 0.9), ("snare", _grid(n_bars, bar_s, spb, [1, 3]), 0.6),
                ("hat", _grid(n_bars, bar_s, spb, np.arange(0, 4, 0.5)), 0.25)]
    elif label == "electronic":  # gated square arpeggio in 16ths, offbeat bass, four on the floor
        t = _grid(n_bars, bar_s, spb, np.arange(0, 4, 0.25))
        tones = chord(t)[np.arange(len(t)), np.resize([0, 1, 2, 1], len(t))]
        out.append(0.3 * part(t, 0.2 * spb, tonic + tones, "square", 0.003, 0.07, 0.0, 0.03, jitter=False))
        t = _grid(n_bars, bar_s, spb, [0.5, 1.5, 2.5, 3.5])
        out.append(0.45 * part(t, 0.4 * spb, tonic - 24 + chord(t)[:, 0], "bass", 0.003, 0.15, 0.5, 0.03,
                               jitter=False))
        hits = [("kick", _grid(n_bars, bar_s, spb, np.arange(4)), 1.0),
                ("clap", _grid(n_bars, bar_s, spb, [1, 3]), 0.6),
                ("ohat", _grid(n_bars, bar_s, spb, [0.5, 1.5, 2.5, 3.5]), 0.3),
                ("hat", _grid(n_bars, bar_s, spb, np.arange(0, 4, 0.25)), 0.12)]
    else:  # folk, 3/4: plucked bass on one, plucked chord arpeggio on two and three
        t = np.arange(n_bars) * bar_s
        out.append(0.4 * part(t, spb, tonic - 24 + chord(t)[:, 0], "pluck", 0.003, 0.5, 0.0, 0.1))
        t = _grid(n_bars, bar_s, spb, [1, 1.5, 2, 2.5])
        tones = chord(t)[np.arange(len(t)), np.resize([0, 1, 2, 1], len(t))]
        out.append(0.3 * part(t, 0.5 * spb, tonic - 12 + tones, "pluck", 0.003, 0.3, 0.0, 0.05))
        hits = [("kick", _grid(n_bars, bar_s, spb, [0]), 0.5),
                ("ohat", _grid(n_bars, bar_s, spb, [1, 2]), 0.15)]
    for name, t, g in hits:
        out.append(place(T, shots[name], jit(t), g * rng.uniform(0.8, 1.0, len(t)), sr))
    return out


def finish(x, rng, sr, label, affect):
    """Room + brightness, then loudness by affect with peak headroom (-1 dBFS), a faint hiss."""
    _, _, corner, target_db = AFFECT[affect]
    y = space(x, rng, sr, label, corner)
    rms = np.sqrt(float(np.dot(y, y)) / len(y)) + 1e-9
    gain = 10.0 ** ((target_db + rng.uniform(-1.0, 1.0)) / 20.0) / rms
    gain = min(gain, 0.89 / (max(float(y.max()), -float(y.min())) + 1e-9))
    y *= np.float32(gain)
    y += rng.standard_normal(len(y), dtype=np.float32) * np.float32(10.0 ** (-66 / 20.0))
    return np.clip(y, -0.99, 0.99, out=y)  # never bites: the peak is <= 0.89 before the hiss
