"""Every head, by the name `just train head=NAME` takes. A test checks that each module in
heads/ that follows the head protocol is listed here, so none can drift out of reach."""
from __future__ import annotations

from types import ModuleType

from heads import dcas, lora, playlist, probe, retrieval, scorer, semantic_ids

HEADS: dict[str, ModuleType] = {
    "dcas": dcas,
    "lora": lora,
    "playlist": playlist,
    "probe": probe,
    "scorer": scorer,
    "retrieval": retrieval,
    "semantic_ids": semantic_ids,
}


def get(name: str) -> ModuleType:
    if name not in HEADS:
        raise KeyError(f"head={name!r} is not a head (heads: {', '.join(sorted(HEADS))})")
    return HEADS[name]
