"""Every head, by the name `just train head=NAME` takes. A test checks that each module in
heads/ that follows the head protocol is listed here, so none can drift out of reach.

Heads are imported when chosen, not here: between them they pull in POT, transformers' T5,
FAISS and peft, seconds of import time that a probe run (or `just train` with a typo) should
not pay."""
from __future__ import annotations

import importlib
from types import ModuleType

HEADS: dict[str, str] = {
    "dcas": "heads.dcas",
    "lora": "heads.lora",
    "playlist": "heads.playlist",
    "probe": "heads.probe",
    "scorer": "heads.scorer",
    "retrieval": "heads.retrieval",
    "semantic_ids": "heads.semantic_ids",
}


def get(name: str) -> ModuleType:
    if name not in HEADS:
        raise KeyError(f"head={name!r} is not a head (heads: {', '.join(sorted(HEADS))})")
    return importlib.import_module(HEADS[name])
