"""The registry of sources, and named presets over them.

Every source module in this folder is listed here once (a test checks that none is missing).
A source module has a docstring, a `Config` dataclass of its `key=value` options,
`items(cfg)` yielding `SourceItem`/`Skipped`, and `fingerprint(cfg)`, a cheap identity of what
`items` would yield (so an unchanged re-ingest is a no-op).
"""
from __future__ import annotations

from types import ModuleType

from ingest import demo, eatd, folder, hf, playlists, ranking_json, term_chunks

SOURCES: dict[str, ModuleType] = {
    "demo": demo,
    "folder": folder,
    "hf": hf,
    "eatd": eatd,
    "ranking_json": ranking_json,
    "playlists": playlists,
    "term_chunks": term_chunks,
}

# dataset name → (source, default options); the user's key=value options override these.
PRESETS: dict[str, tuple[str, dict[str, str]]] = {
    "gtzan": ("hf", {
        "hf_id": "sanchit-gandhi/gtzan", "split": "train", "label_column": "genre",
        "culture_mode": "constant", "culture_value": "west",
    }),
}


def resolve(dataset: str, source: str) -> tuple[str, dict[str, str]]:
    """Which source a dataset name uses, with preset options, or a message saying what to pass."""
    if source:
        if source not in SOURCES:
            raise KeyError(f"source={source!r} is not a known source (known: {', '.join(SOURCES)})")
        preset = PRESETS.get(dataset)
        return source, dict(preset[1]) if preset and preset[0] == source else {}
    if dataset in PRESETS:
        name, options = PRESETS[dataset]
        return name, dict(options)
    if dataset in SOURCES:
        return dataset, {}
    raise KeyError(
        f"dataset={dataset!r} has no source: pass source=folder path=DIR (or one of: "
        f"{', '.join(SOURCES)}; presets: {', '.join(PRESETS)})"
    )
