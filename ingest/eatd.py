"""EATD-Corpus: Chinese interview answers with self-rated depression scores (SDS).

The corpus (Shen, Yang & Zhang, "Automatic Depression Detection: an Emotional
Audio-Textual Corpus and a GRU/BiLSTM-based Model", ICASSP 2022) has one folder per
volunteer; each answered three questions meant to elicit a positive, a neutral and a negative
mood, and filled in Zung's Self-Rating Depression Scale.

Layout (`path=` is the folder holding the subject folders, or its parent with `EATD-Corpus/`):

    t_1/ … t_N/   training subjects        → split=train
    v_1/ … v_M/   validation subjects      → split=val
      positive.wav  neutral.wav  negative.wav              raw recordings
      positive_out.wav  neutral_out.wav  negative_out.wav  denoised/trimmed by the authors
      positive.txt  neutral.txt  negative.txt              transcripts (optional)
      label.txt       raw SDS score (sum of the 20 items, 20–80), e.g. 45 or 62.5
      new_label.txt   SDS index = raw × 1.25 (25–100)

One clip per answer: track id `<subject>_<affect>` (e.g. `t_12_negative`), `speaker_id` the
subject folder, `affect_label` positive/neutral/negative, `sds_raw` (label.txt), `sds_index`
(new_label.txt, else raw × 1.25), `label` = `depressed` when sds_index ≥ `threshold`, else
`not_depressed`; `text` the transcript when its .txt exists (UTF-8, else GB18030);
`audio_variant` says which file was stored (`denoised`/`raw`). The default threshold, 53, is
the cut-off Shen et al. (2022) apply: an SDS index of 53 or more counts as depressed, the
Chinese norm for Zung's Self-Rating Depression Scale (Zung, "A Self-Rating Depression Scale",
Arch. Gen. Psychiatry 12, 1965, defined the scale and the raw → index conversion).

`audio=denoised` (default) stores `*_out.wav` when present: it is the corpus authors' own
preprocessing (noise reduced, silences trimmed) and what their published baselines use, so
results stay comparable; an answer without it falls back to its raw wav, per file, silently
(the `audio_variant` column records it). `audio=raw` always stores the raw recordings.

Reported, never dropped silently: a subject without label.txt, or whose label.txt /
new_label.txt does not hold a number → each of its clips is a `Skipped` naming the file; an
answer with no wav at all → a `Skipped` naming the missing path.

License: EATD-Corpus is released by its authors for research use only; users obtain it from
them (see the paper and the authors' ICASSP2022-Depression repository) and are bound by their
terms. Nothing is downloaded here. The data are sensitive health records: keep the lake private.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from ingest.source import SourceError, SourceItem, Skipped, file_state

AFFECTS = ("positive", "neutral", "negative")
SPLITS = {"t": "train", "v": "val"}
_SUBJECT = re.compile(r"^([tv])_(\d+)$")
SDS_INDEX_FACTOR = 1.25


@dataclass
class Config:
    path: Path
    audio: Literal["raw", "denoised"] = "denoised"
    threshold: float = 53.0  # SDS index at or above which a subject is labelled depressed

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if not self.path.is_dir():
            raise SourceError(f"path={self.path}: not a directory")
        if not math.isfinite(self.threshold) or self.threshold <= 0:
            raise ValueError(f"threshold={self.threshold}: must be a positive number (SDS index, 25-100)")
        if not subjects(self.path) and subjects(self.path / "EATD-Corpus"):
            self.path = self.path / "EATD-Corpus"
        if not subjects(self.path):
            raise SourceError(f"path={self.path}: no EATD subject folders (t_1, …, v_1, …) in it")


def subjects(root: Path) -> list[Path]:
    """Subject folders, train before val, in numeric order (t_2 before t_10)."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _SUBJECT.match(entry.name)
        if match and entry.is_dir():
            found.append((match.group(1) != "t", int(match.group(2)), entry))
    return [entry for *_order, entry in sorted(found)]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")


def _read_score(path: Path) -> float:
    """The number in a label file; ValueError with the reason when there is none."""
    text = _read_text(path).strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a number (found {text[:40]!r})") from None
    if not math.isfinite(value):
        raise ValueError(f"{path} holds {text!r}, not a finite number")
    return value


def _labels(subject: Path) -> tuple[float, float] | str:
    """(sds_raw, sds_index), or why the subject cannot be labelled."""
    label = subject / "label.txt"
    if not label.is_file():
        return f"{label} not found: no SDS score for subject {subject.name}"
    try:
        raw = _read_score(label)
        new_label = subject / "new_label.txt"
        index = _read_score(new_label) if new_label.is_file() else raw * SDS_INDEX_FACTOR
    except (ValueError, OSError) as err:
        return f"unreadable label file: {err}"
    return raw, index


def _answer(subject: Path, affect: str, audio: str) -> tuple[Path, str] | None:
    raw, denoised = subject / f"{affect}.wav", subject / f"{affect}_out.wav"
    if audio == "denoised" and denoised.is_file():
        return denoised, "denoised"
    if raw.is_file():
        return raw, "raw"
    return None


def items(cfg: Config) -> Iterator[SourceItem | Skipped]:
    for subject in subjects(cfg.path):
        split = SPLITS[subject.name[0]]
        labels = _labels(subject)
        for affect in AFFECTS:
            where = subject / f"{affect}.wav"
            if isinstance(labels, str):
                yield Skipped(str(where), labels)
                continue
            found = _answer(subject, affect, cfg.audio)
            if found is None:
                looked = f"{affect}_out.wav or {affect}.wav" if cfg.audio == "denoised" else f"{affect}.wav"
                yield Skipped(str(where), f"answer audio not found: no {looked} in {subject}")
                continue
            wav, variant = found
            sds_raw, sds_index = labels
            meta = {
                "split": split,
                "speaker_id": subject.name,
                "affect_label": affect,
                "label": "depressed" if sds_index >= cfg.threshold else "not_depressed",
                "sds_raw": sds_raw,
                "sds_index": sds_index,
                "audio_variant": variant,
            }
            transcript = subject / f"{affect}.txt"
            if transcript.is_file():
                meta["text"] = _read_text(transcript).strip()
            yield SourceItem(
                track_id=f"{subject.name}_{affect}", format="wav", source=str(wav), path=wav, meta=meta,
            )


def count(cfg: Config) -> int:
    return len(subjects(cfg.path)) * len(AFFECTS)


def fingerprint(cfg: Config) -> str:
    """Changes when any file in a subject folder changes (one stat per file, see
    `ingest.source.FileState`) or an option does."""
    digest = hashlib.sha256(f"eatd:v2:{cfg.audio}:{cfg.threshold!r}".encode())
    for subject in subjects(cfg.path):
        for path in sorted(p for p in subject.iterdir() if p.is_file()):
            digest.update(f"{subject.name}/{path.name}\0{file_state(path).signature}\n".encode())
    return digest.hexdigest()
