"""A synthetic demo corpus: seeded, procedural music and singing clips, generated offline.

Nothing is downloaded and nothing is sampled from recordings: every clip is synthesised
from numpy random draws (wavetable notes, noise drums, a noise-burst reverb), so the audio
is public domain (CC0) and the same `Config` yields byte-identical clips (given the same
numpy/scipy/libsndfile). Clip `i` depends only on `(seed, i)`, so any clip can be generated
alone (`item(cfg, i)`). About 17 ms per 6 s clip on one CPU core: the default 480 clips
take ~8 s.

There is no `split` column: keep a singing group's takes (one `group_id`) on one side of a
split, or the ranking and speaker heads see the same song in train and test.

Each column carries structure that a head can learn from the audio:

* `culture` (west / maqam / raga / pentatonic): the tuning and scale -- 12-TET diatonic
  triads changing every half bar; quarter-tone maqam scales (rast's neutral third, bayati's
  neutral second) in the melody, in a jins ostinato and in an oud-like doubling; a tanpura
  drone on Sa/Pa under a melody gliding into every note (gamaka, andolan); anhemitonic
  pentatonic melodies over open fifths. A quarter-tone pitch-class histogram separates them
  (see tests/test_demo_source.py); instrument timbre comes from the genre, not the culture.
* `label`, the genre (ambient / rock / electronic / folk): tempo (66 / 118 / 128 / 92 bpm),
  meter (folk is 3/4), drums (none / backbeat / four on the floor / a thump on one) and
  timbre (slow pads / distorted saw riffs in parallel fifths / gated square arpeggios and
  offbeat bass / plucked strings). Genre and culture are crossed: every 16 instrumental
  songs, and every 16 singing groups, cover each culture x genre pairing once.
* `affect_label` (negative / neutral / positive): mode (minor-ish / modal / major), tempo
  x0.88 / x1 / x1.12, register (-2 / 0 / +2 semitones), brightness (low-pass at 1.8 kHz /
  4 kHz / open with a presence lift) and loudness (-25 / -21 / -17 dBFS RMS).
* Singing clips (40%): a formant-filtered voice (glottal source, vowel formants, vibrato,
  breath noise) sings the melody, doubled quietly in tune by the lead instrument.
  `speaker_id` is one of 10 singers (`singer_01`..`singer_10`) with their own vocal-tract
  length, register, breathiness and vibrato. `score` (0-100) falls linearly with the
  take's pitch error in cents (per-note detuning plus a slow wobble). In half of the groups
  ("correlated") the error scales the singer's own skill, so score depends on who sings;
  in the other half ("independent") it is drawn from the same distribution independently
  of the singer. `group_id` joins the 4-6 takes of one song (same melody, key, tempo and
  band; different singers) and `rank` is 1 for the best score in its group. Non-singing
  clips have None in these four columns. The hidden truth (regime, pitch error) is in
  `plan(cfg, i)`, not in the metadata.
* `title`, `text`, `terms`: a playlist-like title, one descriptive sentence and 1-3 terms from
  `GLOSSARY`, all true of the clip (derived from the columns above).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from typing import Iterator, Literal

import numpy as np
import soundfile as sf

from ingest import demo_compose as compose
from ingest import demo_synth as synth
from ingest.source import SourceItem

GENERATOR_VERSION = "demo-v1"  # bump whenever the audio or metadata for a Config changes

# Clip layout repeats every 25 clips: 15 instrumental songs and two singing groups (sizes 4
# and 6, swapped every other period, so both score regimes see both sizes) = 17 songs.
_PERIOD, _SONGS_PER_PERIOD = 25, 17
_LAYOUT = "IIIGIIIIIIGIIIIII"

GLOSSARY = {
    "chord progression": "functional triads moving between tonic, subdominant and dominant",
    "major key": "a diatonic major scale in twelve-tone equal temperament",
    "minor key": "a diatonic minor or dorian mode in twelve-tone equal temperament",
    "quarter tones": "intervals between the semitones of equal temperament",
    "neutral third": "a third halfway between minor and major, as in maqam rast",
    "tanpura drone": "a sustained, buzzing drone on the tonic and fifth",
    "gamaka": "ornamental glides and oscillations between notes",
    "pentatonic scale": "a five-note scale without semitones",
    "open fifths": "accompaniment in bare fifths and fourths, without thirds",
    "sustained pads": "slow-attack synthesizer chords held for whole bars",
    "backbeat": "snare hits on beats two and four",
    "distorted guitar": "overdriven power chords",
    "four on the floor": "a kick drum on every beat",
    "synth arpeggio": "chord tones played one at a time in fast sixteenth notes",
    "waltz time": "three beats to the bar",
    "plucked strings": "notes with a sharp attack and a free decay",
    "vibrato": "a periodic wobble of a sung pitch",
}
_CULTURE_TERMS = {"west": ("chord progression", "KEY"), "maqam": ("quarter tones", "neutral third"),
                  "raga": ("tanpura drone", "gamaka"), "pentatonic": ("pentatonic scale", "open fifths")}
_GENRE_TERMS = {"ambient": ("sustained pads",), "rock": ("backbeat", "distorted guitar"),
                "electronic": ("four on the floor", "synth arpeggio"),
                "folk": ("waltz time", "plucked strings")}
_WORDS = {
    "negative": ("melancholy", "dark", "sombre", "brooding", "rainy day"),
    "neutral": ("calm", "steady", "mellow", "easygoing", "focus"),
    "positive": ("upbeat", "bright", "joyful", "sunny", "feel-good"),
    "west": ("western", "diatonic", "classic harmony"),
    "maqam": ("maqam", "arabic", "middle eastern"),
    "raga": ("raga", "hindustani", "indian classical"),
    "pentatonic": ("pentatonic", "east asian", "five-note"),
    "ambient": ("ambient", "chillout", "soundscape"),
    "rock": ("rock", "guitar rock", "garage"),
    "electronic": ("electronic", "dance", "club"),
    "folk": ("folk", "acoustic", "waltz"),
}
_OCCASIONS = {"negative": ("late night", "rainy evening", "solitude"),
              "neutral": ("study", "evening", "reading"), "positive": ("morning", "party", "workout")}


@dataclass
class Config:
    n: int = 480  # number of clips
    seed: int = 0
    sample_rate: int = 22050
    duration_s: float = 6.0
    format: Literal["wav", "flac"] = "wav"  # container of SourceItem.data (PCM_16 either way)

    def __post_init__(self) -> None:
        self.duration_s = float(self.duration_s)  # so 6 and 6.0 fingerprint alike
        if self.n < 0:
            raise ValueError(f"n={self.n}: must be 0 or more")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate={self.sample_rate}: must be 8000..96000")
        if not 0.5 <= self.duration_s <= 120:
            raise ValueError(f"duration_s={self.duration_s}: must be 0.5..120")
        if self.format not in ("wav", "flac"):
            raise ValueError(f"format={self.format!r}: must be wav or flac")


@dataclass(frozen=True)
class ClipPlan:
    """Everything about clip i except its audio; `pitch_error_cents` and `regime` are hidden truth."""

    index: int
    song: int
    culture: str
    label: str
    affect: str
    tonic: float  # MIDI pitch of the tonic (fractional: instruments are tuned within +-8 cents)
    bpm: float
    singer: int | None = None
    group: int | None = None
    regime: str | None = None  # "correlated" / "independent" score-vs-singer, singing only
    pitch_error_cents: float | None = None
    score: float | None = None
    rank: int | None = None


def _locate(i: int) -> tuple[int, int, int | None, int, int]:
    """Clip index -> (song, instrumental-song or group index, group or None, member, size)."""
    q, r = divmod(i, _PERIOD)
    sizes = (4, 6) if q % 2 == 0 else (6, 4)
    pos, slot = 0, 0
    for off, kind in enumerate(_LAYOUT):
        size = 1 if kind == "I" else sizes[slot]
        if r < pos + size:
            song = q * _SONGS_PER_PERIOD + off
            if kind == "G":
                return song, 2 * q + slot, 2 * q + slot, r - pos, size
            return song, q * (_SONGS_PER_PERIOD - 2) + off - slot, None, 0, 1
        pos, slot = pos + size, slot + (kind == "G")
    raise AssertionError("layout does not cover the period")


def _combo(seed: int, stream: int, k: int) -> tuple[str, str, str]:
    """Balanced (culture, label, affect) for the k-th instrumental song or singing group (each
    has its own `stream`): every 16 consecutive ones cover every culture x label cell, every 48
    every cell with each affect once; the order is shuffled per block by the seed."""
    block, j, p = k // 48, (k % 48) // 16, k % 16
    cell = int(np.random.default_rng([seed, stream, block, j]).permutation(16)[p])
    affect = (j + int(np.random.default_rng([seed, stream + 1, block]).integers(0, 3, 16)[cell])) % 3
    return synth.CULTURES[cell % 4], synth.LABELS[cell // 4], synth.AFFECTS[affect]


def _group_scores(seed: int, group: int, size: int):
    """Singers, regime, pitch errors (cents), scores and ranks of one singing group."""
    rng = np.random.default_rng([seed, 3, group])
    singers = rng.choice(len(synth.SINGERS), size=size, replace=False)
    skill = np.array([s[-1] for s in synth.SINGERS])
    regime = "correlated" if group % 2 == 0 else "independent"
    # independent: a skill drawn for a random singer, not the one singing (same marginal)
    base = skill[singers] if regime == "correlated" else skill[rng.integers(0, len(skill), size)]
    err = base * np.exp(rng.normal(0.0, 0.2, size))
    score = np.round(np.clip(100.0 - 1.6 * err + rng.normal(0.0, 2.5, size), 0.0, 100.0), 2)
    rank = np.empty(size, np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, size + 1)
    return singers, regime, err, score, rank


def plan(cfg: Config, i: int) -> ClipPlan:
    """The plan of clip i (cheap: no audio). Exposed so tests can check hidden truth."""
    song, k, group, member, size = _locate(i)
    culture, label, affect = _combo(cfg.seed, 10 if group is None else 20, k)
    rng = np.random.default_rng([cfg.seed, 4, song])
    tempo_factor, shift = synth.AFFECT[affect][:2]
    tonic = 52.0 + shift + rng.integers(0, 12) + rng.uniform(-0.08, 0.08)
    bpm = synth.GENRES[label]["bpm"] * tempo_factor * rng.uniform(0.97, 1.03)
    base = ClipPlan(i, song, culture, label, affect, float(tonic), float(bpm))
    if group is None:
        return base
    singers, regime, err, score, rank = _group_scores(cfg.seed, group, size)
    return ClipPlan(i, song, culture, label, affect, float(tonic), float(bpm), int(singers[member]),
                    group, regime, float(err[member]), float(score[member]), int(rank[member]))


def render(cfg: Config, p: ClipPlan) -> tuple[np.ndarray, dict]:
    """Mono float32 audio in [-1, 1] for a plan, plus synthesis info (voice stem, notes)."""
    T = int(round(cfg.duration_s * cfg.sample_rate))
    song_rng = np.random.default_rng([cfg.seed, 5, p.song])
    rng = np.random.default_rng([cfg.seed, 6, p.index])
    dry, info = compose.render_clip(song_rng, rng, p.culture, p.label, p.affect, p.tonic, p.bpm,
                                  cfg.sample_rate, T, p.singer, p.pitch_error_cents or 0.0)
    return compose.finish(dry, rng, cfg.sample_rate, p.label, p.affect), info


def describe(cfg: Config, p: ClipPlan) -> dict:
    """The metadata columns of a clip: labels, singing columns, title, text, terms."""
    rng = np.random.default_rng([cfg.seed, 7, p.index])
    pick = lambda words: str(words[rng.integers(len(words))])  # noqa: E731
    a, c, g = pick(_WORDS[p.affect]), pick(_WORDS[p.culture]), pick(_WORDS[p.label])
    o = pick(_OCCASIONS[p.affect])
    templates = ["{a} {c} {g}", "{c} {g} for {o}", "{a} {g} {o}", "{a} {c} {o}", "{g} {c} {a}"]
    title = templates[rng.integers(len(templates))].format(a=a, c=c, g=g, o=o)
    singing = p.singer is not None
    if singing and rng.random() < 0.5:
        title += " vocals"
    speed = "slow" if p.bpm < 80 else ("lively" if p.bpm > 125 else "mid-tempo")
    mood = {"negative": "dark and subdued", "neutral": "calm and even",
            "positive": "bright and upbeat"}[p.affect]
    who = ""
    if singing:
        fs, octave, breath, *_ = synth.SINGERS[p.singer]
        who = f", sung by a {'breathy ' if breath > 0.07 else ''}{'high' if octave else 'low'} voice"
    text = (f"A {speed} {p.label} piece at {p.bpm:.0f} bpm in {synth.SCALE_NAMES[p.culture][p.affect]}, "
            f"{mood}{who}.")
    key = "major key" if p.affect == "positive" else "minor key"
    cands = [t.replace("KEY", key) for t in _CULTURE_TERMS[p.culture]] + list(_GENRE_TERMS[p.label])
    if p.culture == "maqam" and p.affect == "negative":
        cands.remove("neutral third")  # bayati has a neutral second, not a neutral third
    cands += ["vibrato"] if singing else []
    terms = [str(t) for t in rng.choice(cands, size=min(int(rng.integers(1, 4)), len(cands)), replace=False)]
    return {
        "culture": p.culture, "label": p.label, "affect_label": p.affect,
        "speaker_id": f"singer_{p.singer + 1:02d}" if singing else None,
        "group_id": f"demo_song_{p.group:04d}" if singing else None,
        "score": p.score, "rank": p.rank, "title": title, "text": text, "terms": terms,
    }


def encode(y: np.ndarray, cfg: Config) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, cfg.sample_rate, format=cfg.format.upper(), subtype="PCM_16")
    return buf.getvalue()


def item(cfg: Config, i: int) -> SourceItem:
    """Clip i alone (the same bytes as the i-th item of `items(cfg)`)."""
    p = plan(cfg, i)
    y, _ = render(cfg, p)
    return SourceItem(track_id=f"demo_{i:06d}", format=cfg.format, source=f"demo:seed={cfg.seed}/{i}",
                      data=encode(y, cfg), meta=describe(cfg, p))


def items(cfg: Config) -> Iterator[SourceItem]:
    for i in range(cfg.n):
        yield item(cfg, i)


def count(cfg: Config) -> int:
    return cfg.n


def fingerprint(cfg: Config) -> str:
    """Identity of what `items(cfg)` yields: the config plus the generator version."""
    blob = json.dumps({"v": GENERATOR_VERSION, **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()
