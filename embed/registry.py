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


def backbone_class(backbone: str) -> type:
    """The class that implements a backbone name; importing it loads no weights."""
    backbone = resolve(backbone)
    if backbone == "logmel":
        from embed.logmel import LogMel

        return LogMel
    if backbone.startswith("musicnn-"):
        from embed.musicnn.backbone import MusicnnBackbone

        return MusicnnBackbone
    from embed.hf import HFBackbone

    return HFBackbone


def precisions(backbone: str) -> tuple[str, ...]:
    """The precisions a backbone really computes in (its class declares them)."""
    return backbone_class(backbone).precisions


def revision_for(backbone: str, revision: str) -> str:
    """The hub revision an `hf:` backbone loads: the one given, else its alias's reviewed pin."""
    backbone = resolve(backbone)
    if backbone in BUILTIN:
        if revision:
            raise ValueError(f"revision={revision}: only hf: backbones and their aliases load a hub revision")
        return ""
    return revision or getattr(hf_aliases().get(backbone), "revision", "")


def load(backbone: str, layers: str, device: str, precision: str,
         trust_remote_code: bool | None, revision: str = "") -> Backbone:
    backbone = resolve(backbone)
    if backbone == "logmel":
        return backbone_class(backbone)(layers=layers)
    if backbone.startswith("musicnn-"):
        return backbone_class(backbone)(backbone, layers=layers, device=device)
    from embed.hf import load_hf

    return load_hf(backbone, layers=layers or "last", device=device, precision=precision,
                   trust_remote_code=trust_remote_code, revision=revision)
