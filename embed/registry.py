"""Backbone names → loaders. Heavy imports (transformers, the musicnn weights) happen on load.

Kinds: `hf:<hub id or local dir>` and its named aliases (embed/hf.py), the musicnn taggers
(`musicnn-mtt`, `musicnn-msd`), and the `logmel` baseline.
"""
from __future__ import annotations

import re

from embed.backbone import Backbone

BUILTIN = ("logmel", "musicnn-mtt", "musicnn-msd")


def hf_aliases() -> dict:
    # The alias table lives beside the hub helpers, not in embed.hf, so naming a backbone
    # never imports the model code.
    from embed.hf_source import ALIASES

    return ALIASES


def known_names() -> list[str]:
    return [*BUILTIN, *hf_aliases()]


def resolve(backbone: str) -> str:
    """Canonical spelling of a backbone argument: a built-in, an alias, or `hf:<id or dir>`."""
    if backbone in BUILTIN or backbone in hf_aliases():
        return backbone
    if backbone.startswith("hf:") and len(backbone) > 3:
        return backbone
    raise ValueError(
        f"backbone={backbone!r} is not known: use one of {', '.join(known_names())}, "
        "or hf:<hub id or local model dir>"
    )


def default_name(backbone: str) -> str:
    """The name vectors are stored under when the user gives none: the alias, or the model's
    last path component for `hf:` (`hf:/models/my-mert` → `my-mert`)."""
    if not backbone.startswith("hf:"):
        return backbone
    tail = backbone[3:].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_\-]+", "-", tail).strip("-") or "hf-model"


def load(backbone: str, layers: str, device: str, precision: str,
         trust_remote_code: bool | None) -> Backbone:
    backbone = resolve(backbone)
    if backbone == "logmel":
        from embed.logmel import LogMel

        return LogMel(layers=layers)
    if backbone.startswith("musicnn-"):
        from embed.musicnn.backbone import MusicnnBackbone

        return MusicnnBackbone(backbone, layers=layers, device=device)
    from embed.hf import load_hf

    return load_hf(backbone, layers=layers or "last", device=device, precision=precision,
                   trust_remote_code=trust_remote_code)
