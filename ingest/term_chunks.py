"""Term-level chunks (seed 003): short audio chunks, their transcript and the glossary terms in them.

    just ingest dataset=terms source=term_chunks path=xl_term_level_chunks_merged.json \
        glossary=glossary_filtered.json aliases=alt2main.json [terms=term_set.txt]
    just ingest dataset=terms source=term_chunks path=samples/xl/   # every term_level_chunks_*.json

What it reads: `path=` one or more JSON files (comma-separated) or a folder (its
`term_level_chunks_*.json` and `*_chunks_merged.json` files, sorted). Each file is a JSON list
of chunk objects:

    {"term_chunk_audio": "chunks/utt1_0.wav", "term_chunk_text": "we trained a transformer",
     "term_chunk_audio_ground_truth_terms": ["Transformer"], "speaker_id": "s1", "begin": 3.2}

Rows: `track_id` is the audio path without extension (relative to the JSON's folder, or as
written when absolute and outside it); `text` the chunk text; `terms` the normalised main terms
(ingest.glossary: case, whitespace, alias → main term; the seed's filter: 3+ characters, not
mostly digits), empty for a chunk without a term (the key missing, null or []). Every other key
is kept as a column (as ranking_json keeps them). Audio paths are relative to the JSON file's
folder or absolute.

Reported as `Skipped`, never dropped: an object that is not a chunk, a chunk without
`term_chunk_audio`, a missing audio file, a file named twice (kept at its first place), terms
that are not a list of strings. Undecodable, silent or NaN audio is refused or flagged by the
ingest's own validator like any clip. A chunk whose terms the filter removes keeps its row (no
term) with a note saying which were removed.

The glossary files (`glossary=`, `aliases=`, `terms=`) make the dataset's `glossary` table
(ingest.glossary), written after the tracks commit; terms that chunks name and the glossary
lacks are added to it, so every positive can be searched for.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ingest import glossary as gl
from ingest.ranking_json import _extra, _track_id, parse
from ingest.source import ListedFiles, SourceError, SourceItem, Skipped, file_state

AUDIO, TEXT, TERMS = "term_chunk_audio", "term_chunk_text", "term_chunk_audio_ground_truth_terms"
PATTERNS = ("term_level_chunks_*.json", "*_chunks_merged.json")


@dataclass
class Config:
    path: str                      # file[,file…] or a folder of term_level_chunks_*.json
    glossary: Path | None = None   # glossary_filtered.json
    aliases: Path | None = None    # alt2main.json
    terms: Path | None = None      # term_set.txt

    def __post_init__(self) -> None:
        self.files = chunk_files(str(self.path))
        for key in ("glossary", "aliases", "terms"):
            value = getattr(self, key)
            if value is not None and str(value).strip():
                value = Path(value).expanduser()
                if not value.is_file():
                    raise SourceError(f"{key}={value}: no such file")
                setattr(self, key, value)
            else:
                setattr(self, key, None)


def chunk_files(spec: str) -> list[Path]:
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        path = Path(part).expanduser()
        if path.is_dir():
            found = sorted({f for pattern in PATTERNS for f in path.glob(pattern)})
            if not found:
                raise SourceError(f"path={path}: a folder without {' or '.join(PATTERNS)} files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(f"path={path}: no such file or folder")
    if not files:
        raise SourceError("path= is empty: name a chunks JSON file, several separated by commas, or a folder")
    return list(dict.fromkeys(files))


def load_glossary(cfg: Config) -> gl.Glossary:
    return gl.load(cfg.glossary, cfg.aliases, cfg.terms)


def _audio_path(audio: str, folder: Path) -> Path:
    path = Path(audio).expanduser()
    return path if path.is_absolute() else folder / audio.replace("\\", "/")


def chunk_terms(raw: Any, glossary: gl.Glossary) -> tuple[list[str], list[str]] | None:
    """(kept main terms, removed raw terms), or None when `raw` is not a list of strings."""
    if raw is None:
        return [], []
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        return None
    kept, removed = [], []
    for term in raw:
        main = glossary.main(term)
        (kept if gl.keep_term(main) else removed).append(main if gl.keep_term(main) else term)
    return list(dict.fromkeys(kept)), removed


def items(cfg: Config, glossary: gl.Glossary | None = None) -> Iterator[SourceItem | Skipped]:
    glossary = glossary or load_glossary(cfg)
    listed = ListedFiles()
    for file in cfg.files:
        chunks = parse(file)
        for index, chunk in enumerate(chunks):
            where = f"{file}: chunk {index}"
            if not isinstance(chunk, dict):
                yield Skipped(where, f"not a chunk object: a {type(chunk).__name__}")
                continue
            audio = chunk.get(AUDIO)
            if not isinstance(audio, str) or not audio.strip():
                yield Skipped(where, f"no `{AUDIO}` path")
                continue
            path = _audio_path(audio.strip(), file.parent)
            fmt = listed.check(path, where)
            if isinstance(fmt, Skipped):
                yield fmt
                continue
            terms = chunk_terms(chunk.get(TERMS), glossary)
            if terms is None:
                yield Skipped(str(path), f"`{TERMS}` is {chunk.get(TERMS)!r}, not a list of terms ({where})")
                continue
            kept, removed = terms
            text = chunk.get(TEXT)
            meta: dict[str, Any] = {"text": text if isinstance(text, str) else None, "terms": kept}
            for key, value in chunk.items():
                if key not in (AUDIO, TEXT, TERMS):
                    name, value = _extra(key, value)
                    meta[name] = value
            note = f"terms removed by the seed's filter (under 3 characters or mostly digits): {removed}" if removed else None
            yield SourceItem(track_id=_track_id(audio.strip(), file.parent), format=fmt, source=str(path),
                             path=path, meta=meta, note=note)


def count(cfg: Config) -> int:
    return sum(len(parse(f)) for f in cfg.files)


def fingerprint(cfg: Config) -> str:
    """Every chunk file's and glossary file's bytes, and the FileState of every audio file named."""
    digest = hashlib.sha256(b"term_chunks:v1\0")
    for extra in (cfg.glossary, cfg.aliases, cfg.terms):
        digest.update(b"\0" + (extra.read_bytes() if extra else b"-"))
    for file in cfg.files:
        digest.update(f"\0{file.resolve()}\0".encode() + file.read_bytes())
        for chunk in parse(file):
            audio = chunk.get(AUDIO) if isinstance(chunk, dict) else None
            if isinstance(audio, str) and audio.strip():
                path = _audio_path(audio.strip(), file.parent)
                digest.update(f"{path}\0{file_state(path).signature}\n".encode())
    return digest.hexdigest()


def after_commit(cfg: Config, dataset: str) -> Path:
    """The glossary table: the glossary files plus every term a chunk names."""
    glossary = load_glossary(cfg)
    for file in cfg.files:
        for chunk in parse(file):
            if isinstance(chunk, dict):
                terms = chunk_terms(chunk.get(TERMS), glossary)
                for term in (terms or ([], []))[0]:
                    glossary.add(term)
    return gl.write(glossary, dataset)
