"""Glossary terms for seed 003: one normalisation of terms, and the `glossary` table.

Terms are normalised here and nowhere else: Unicode NFKC, case-folded, inner whitespace
collapsed to one space, then an alias is replaced by its main term (`alt2main.json`). The
seed's loader keeps only terms of 3 or more characters that are not mostly digits
(`keep_term`); the chunk source and the glossary both apply it.

Files (the seed's, as they are):
- `glossary_filtered.json`: an object term → entry; an entry is an object (its
  `description`, or `desc`/`definition`, is kept; any other keys are ignored), a string (the
  description) or null. A JSON list of terms is accepted too.
- `alt2main.json`: an object alias → main term.
- `term_set.txt`: one term a line (blank lines and lines starting with # ignored).

Table `glossary` (lake.schemas.GLOSSARY): `dataset, term, main_term, description`, one row
per distinct normalised term: every main term (term = main_term), every alias (its main term,
the main term's description), every term of term_set.txt and every term a chunk names.
"""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa

from ingest.source import SourceError
from lake import atomic, catalog, paths
from lake.schemas import GLOSSARY

_SPACE = re.compile(r"\s+")


def normal(term: str) -> str:
    """Case and whitespace normalised (no alias mapping)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", term).casefold()).strip()


def keep_term(term: str) -> bool:
    """The seed's filter: 3+ characters, and digits are not the majority of them."""
    digits = sum(c.isdigit() for c in term)
    return len(term) >= 3 and digits * 2 <= len(term)


def _read_json(path: Path, key: str) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise SourceError(f"{key}={path}: no such file") from None
    except UnicodeDecodeError as err:
        raise SourceError(f"{key}={path}: not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise SourceError(f"{key}={path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None


class Glossary:
    """Main terms with descriptions and the alias map, all normalised."""

    def __init__(self, descriptions: dict[str, str | None] | None = None, aliases: dict[str, str] | None = None):
        self.descriptions = dict(descriptions or {})   # main term → description
        self.aliases = dict(aliases or {})             # alias → main term

    def main(self, term: str) -> str:
        """The main term of a raw term (normalised, alias mapped)."""
        norm = normal(term)
        return self.aliases.get(norm, norm)

    def add(self, term: str) -> None:
        self.descriptions.setdefault(self.main(term), None)

    def rows(self, dataset: str) -> pa.Table:
        terms = {t: t for t in self.descriptions}
        terms.update({a: m for a, m in self.aliases.items() if a != m})
        for main in set(terms.values()):
            self.descriptions.setdefault(main, None)
        ordered = sorted(terms)
        return pa.table({
            "dataset": [dataset] * len(ordered), "term": ordered,
            "main_term": [terms[t] for t in ordered],
            "description": [self.descriptions.get(terms[t]) for t in ordered],
        }, schema=GLOSSARY)


def load(glossary: Path | None, aliases: Path | None, term_set: Path | None) -> Glossary:
    """The seed's glossary files → a Glossary; a malformed file is a SourceError naming it."""
    alias_map: dict[str, str] = {}
    if aliases is not None:
        raw = _read_json(aliases, "aliases")
        if not isinstance(raw, dict):
            raise SourceError(f"aliases={aliases}: expected a JSON object alias → main term, found a {type(raw).__name__}")
        for alias, main in raw.items():
            if not isinstance(main, str) or not main.strip():
                raise SourceError(f"aliases={aliases}: alias {alias!r} maps to {main!r}, not a term")
            alias_map[normal(alias)] = normal(main)
    # an alias of an alias resolves to the final main term (a cycle stops where it repeats)
    for alias in list(alias_map):
        seen, main = {alias}, alias_map[alias]
        while main in alias_map and main not in seen:
            seen.add(main)
            main = alias_map[main]
        alias_map[alias] = main
    out = Glossary(aliases=alias_map)
    if glossary is not None:
        raw = _read_json(glossary, "glossary")
        entries: Iterable[tuple[Any, Any]]
        if isinstance(raw, dict):
            entries = raw.items()
        elif isinstance(raw, list):
            entries = ((t, None) for t in raw)
        else:
            raise SourceError(f"glossary={glossary}: expected a JSON object term → entry, found a {type(raw).__name__}")
        for term, entry in entries:
            if not isinstance(term, str):
                raise SourceError(f"glossary={glossary}: term {term!r} is not a string")
            if not keep_term(normal(term)):
                continue
            out.add(term)
            description = _description(entry)
            if description and not out.descriptions.get(out.main(term)):
                out.descriptions[out.main(term)] = description
    if term_set is not None:
        try:
            lines = term_set.read_text(encoding="utf-8-sig").splitlines()
        except OSError as err:
            raise SourceError(f"terms={term_set}: cannot read: {err.strerror or err}") from None
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#") and keep_term(normal(line)):
                out.add(line)
    return out


def _description(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry.strip() or None
    if isinstance(entry, dict):
        for key in ("description", "desc", "definition"):
            if isinstance(entry.get(key), str) and entry[key].strip():
                return entry[key].strip()
    return None


def part_path(dataset: str) -> Path:
    return paths.partition_dir("glossary", dataset=dataset) / "part-0.parquet"


def write(glossary: Glossary, dataset: str) -> Path:
    """Replaces the dataset's glossary (atomically) and refreshes the catalog's views."""
    target = atomic.write_parquet(glossary.rows(dataset), part_path(dataset))
    catalog.refresh()
    return target
