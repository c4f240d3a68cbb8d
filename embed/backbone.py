"""The backbone contract: what the engine needs from any model that turns audio into vectors.

A backbone receives mono float32 waveforms already at its `sample_rate` (the engine decodes,
mixes down, resamples and crops/chunks) and returns, for each requested layer, one pooled
vector per waveform. Everything the `backbones` table records comes from `provenance()`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from lake import versions


class Backbone(Protocol):
    # A label for messages. Vectors are stored under the job's name (EmbedConfig.name: name=, or
    # registry.default_name of the backbone argument), which this label need not equal.
    name: str
    sample_rate: int     # waveforms given to embed() are at this rate
    dim: int             # length of every vector it returns
    layers: tuple[str, ...]  # the layers embed() returns, in a stable order
    # The precisions embed() really computes in: "fp32", and "bf16" when it runs under the
    # engine's autocast. Declared on the class, so a job can resolve and record its precision
    # before loading any weights.
    precisions: tuple[str, ...]

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """{layer: float32 array [len(waveforms), dim]} for a batch of mono waveforms."""
        ...

    def provenance(self) -> "Provenance":
        ...


@dataclass
class Provenance:
    """Identity of a backbone's vectors: two runs with equal provenance give comparable vectors."""

    model_id: str          # hub id, local path, or a built-in name
    revision: str          # hub commit, weight file hash, or algorithm version
    sample_rate: int
    dim: int
    layers: tuple[str, ...]
    pooling: str           # how frames become one vector per clip
    options: dict[str, str] = field(default_factory=dict)  # anything else that changes vectors
    packages: dict[str, str] = field(default_factory=dict)


def package_versions(*names: str) -> dict[str, str]:
    """numpy and torch, which every backbone computes with, and the backbone's own packages."""
    return versions.package_versions("numpy", "torch", *names)


def select_layers(requested: str, available: Sequence[str], default: str = "last") -> tuple[str, ...]:
    """Parses `layers=last|all|3,6,9|<name>` against what a backbone can emit."""
    requested = requested or default
    if requested == "all":
        return tuple(available)
    chosen = tuple(part.strip() for part in requested.split(",") if part.strip())
    unknown = [layer for layer in chosen if layer not in available]
    if unknown:
        raise ValueError(f"layers={requested}: no layer {unknown[0]!r} (available: {', '.join(available)})")
    return chosen


def name_from_path(target: str, fallback: str = "model") -> str:
    """A storable name from a hub id or directory: its last component (`/models/my-mert` → `my-mert`)."""
    tail = target.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_\-]+", "-", tail).strip("-") or fallback
