"""Arrangement behind the demo corpus: melody, harmony, band parts and mastering of one clip.

The sound primitives (wavetable voices, drums, room) live in `ingest.demo_synth`; this module
decides what is played: the culture's scale and accompaniment, the genre's band and groove,
the affect's mode, register and brightness (see the tables in `demo_synth`).
"""
from __future__ import annotations

import numpy as np

from ingest.demo_synth import (AFFECT, GENRES, SCALES, SINGERS, VOWELS, drum_shots, place, render, space)

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
