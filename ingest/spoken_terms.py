"""Spoken term chunks for the retrieval demo and tests: real speech, offline, from espeak-ng.

    python -m ingest.spoken_terms out=data/spoken_terms [voices=...] [test_voices=...]
    just ingest dataset=spoken source=term_chunks path=data/spoken_terms \
        glossary=data/spoken_terms/glossary_filtered.json aliases=data/spoken_terms/alt2main.json

Writes files in seed 003's own formats, so the demo runs the same ingest a user's GigaSpeech
chunks do: `chunks/<voice>/<n>.wav` (espeak-ng, 22.05 kHz mono), one
`term_level_chunks_0_<N>.json` (term_chunk_audio, term_chunk_text,
term_chunk_audio_ground_truth_terms, speaker_id = the voice, split), `glossary_filtered.json`
(term → {"description"}) and `alt2main.json` (alias → main term; some chunks say the alias).

Every voice speaks every phrase: each glossary term alone and after a short carrier word
("the …"), some aliases, and phrases without a term ("thank you", "good morning", ...).
`split` puts whole voices in train, val or test (`test_voices=` and `val_voices=`; the rest
train), so test measures voices never heard in training: split with from_source=true.
Needs the espeak-ng program (Debian/Ubuntu: apt-get install espeak-ng); a missing program is
one line saying so.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lake import atomic
from lake.cli import UsageError, key_values, parse_config, run_main

TERMS = {
    "transformer": "a neural network built from attention layers",
    "spectrogram": "a picture of sound: energy per frequency over time",
    "microphone": "turns sound into an electrical signal",
    "algorithm": "a finite list of steps",
    "database": "an organised store of data",
    "bandwidth": "the width of a frequency band",
    "encryption": "encoding a message so only its reader can read it",
    "compiler": "translates source code into machine code",
    "telescope": "an instrument for seeing far away objects",
    "vaccine": "trains the immune system against a disease",
    "hydrogen": "the lightest chemical element",
    "volcano": "an opening in the crust where magma escapes",
    "satellite": "an object in orbit around a planet",
    "photosynthesis": "how plants turn light into sugar",
    "keyboard": "a panel of keys for typing",
    "umbrella": "a canopy against the rain",
    "avocado": "a green fruit with a big stone",
    "helicopter": "an aircraft lifted by rotors",
    "dinosaur": "a reptile of the Mesozoic era",
    "chocolate": "a food made from roasted cacao seeds",
}
ALIASES = {"neural transformer": "transformer", "mic": "microphone", "chopper": "helicopter"}
NO_TERM = ("thank you", "good morning", "see you later", "well okay then", "yes of course",
           "I think so", "no problem", "let me see", "that is right", "one moment please")
VOICES = ("en+m1", "en+m3", "en+f1", "en+f3", "en-us+m2", "en-us+f2", "en-gb-x-rp+m4", "en-029+f4")
VAL_VOICES = ("en-gb-scotland+m5",)
TEST_VOICES = ("en-us+f5", "en-gb-x-rp+m7")


@dataclass
class Config:
    out: Path
    voices: tuple[str, ...] = VOICES
    val_voices: tuple[str, ...] = VAL_VOICES
    test_voices: tuple[str, ...] = TEST_VOICES
    terms: int = len(TERMS)           # how many of the glossary terms are spoken (all stay in the glossary)
    speed: int = 165                  # espeak-ng words per minute

    def __post_init__(self) -> None:
        self.out = Path(self.out).expanduser()
        for key in ("voices", "val_voices", "test_voices"):
            value = getattr(self, key)
            setattr(self, key, tuple(v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()))
        if not self.voices:
            raise ValueError("voices= is empty: name at least one training voice")
        if not 1 <= self.terms <= len(TERMS):
            raise ValueError(f"terms={self.terms}: between 1 and {len(TERMS)}")


def phrases(cfg: Config) -> list[tuple[str, list[str]]]:
    """(text, ground-truth terms as written in the chunk) for one voice."""
    spoken = list(TERMS)[:cfg.terms]
    out = [(t, [t]) for t in spoken] + [(f"the {t}", [t]) for t in spoken]
    out += [(alias, [alias]) for alias, main in ALIASES.items() if main in spoken]
    out += [(text, []) for text in NO_TERM]
    return out


def speak(text: str, voice: str, path: Path, speed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        done = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(tmp), text],
                              capture_output=True, text=True)
        if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size < 100:
            raise UsageError(f"espeak-ng -v {voice} failed: {done.stderr.strip() or 'no audio written'}")


def generate(cfg: Config) -> dict[str, Path]:
    if shutil.which("espeak-ng") is None:
        raise UsageError("espeak-ng is not installed: apt-get install espeak-ng (it speaks the demo's phrases)")
    chunks = []
    split = {**{v: "train" for v in cfg.voices}, **{v: "val" for v in cfg.val_voices},
             **{v: "test" for v in cfg.test_voices}}
    for voice, part in split.items():
        folder = voice.replace("+", "_")
        for n, (text, terms) in enumerate(phrases(cfg)):
            rel = f"chunks/{folder}/{n:03d}.wav"
            target = cfg.out / rel
            if not target.is_file():  # re-running keeps what is there: same text, same voice
                speak(text, voice, target, cfg.speed)
            chunk = {"term_chunk_audio": rel, "term_chunk_text": text, "speaker_id": voice, "split": part}
            if terms:  # the seed's files leave the key out of chunks without a term
                chunk["term_chunk_audio_ground_truth_terms"] = terms
            chunks.append(chunk)
    files = {
        "chunks": cfg.out / f"term_level_chunks_0_{len(chunks)}.json",
        "glossary": cfg.out / "glossary_filtered.json",
        "aliases": cfg.out / "alt2main.json",
    }
    atomic.write_json(chunks, files["chunks"])
    for stale in cfg.out.glob("term_level_chunks_*.json"):  # another voice set's list: path=<out> reads them all
        if stale != files["chunks"]:
            stale.unlink()
    atomic.write_json({t: {"description": d} for t, d in TERMS.items()}, files["glossary"])
    atomic.write_json(ALIASES, files["aliases"])
    return files


def main(argv: list[str]) -> int:
    cfg = parse_config(Config, key_values(argv))
    files = generate(cfg)
    print(" ".join(f"{k}={v}" for k, v in files.items()).replace("chunks=", "path="))
    return 0


if __name__ == "__main__":
    run_main(main)
