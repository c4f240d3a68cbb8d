"""musicnn as an audiolake backbone: 16 kHz mono in, one vector per clip per layer out.

Layers: `penultimate` (200, the default), `pool` (1506, mean ⊕ max of the mid-end features)
and `tags` (50 sigmoid tag probabilities); each is the mean over the clip's 3 s patches.
One stored column has one width, so layers of different widths go under different names
(e.g. `backbone=musicnn-mtt layers=pool name=musicnn-mtt-pool`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from embed.backbone import Provenance, package_versions, select_layers

from .frontend import SAMPLE_RATE
from .tagger import MODELS, load_musicnn

LAYER_DIMS = {"penultimate": 200, "pool": 1506, "tags": 50}


class MusicnnBackbone:
    sample_rate = SAMPLE_RATE
    precisions = ("fp32", "bf16")  # its convolutions run under the engine's autocast

    def __init__(self, name: str, layers: str = "", device: str = "cpu", batch_patches: int | None = None,
                 **_ignored):
        if name not in MODELS:
            raise ValueError(f"unknown musicnn backbone {name!r} (known: {', '.join(MODELS)})")
        self.name = name
        self.layers = select_layers(layers, tuple(LAYER_DIMS), default="penultimate")
        dims = {LAYER_DIMS[layer] for layer in self.layers}
        if len(dims) > 1:
            raise ValueError(
                f"layers={','.join(self.layers)}: musicnn layers have different widths "
                f"({', '.join(f'{l}={LAYER_DIMS[l]}' for l in self.layers)}); embed each under its own name, "
                f"e.g. layers=pool name={name}-pool"
            )
        self.dim = dims.pop()
        # On CPU musicnn runs fastest a patch or two at a time (measured on 2 cores: 47 patches/s
        # at 1-2 per forward, 17 at 64: the front-end activations fall out of cache); a GPU wants 64.
        self.batch_patches = batch_patches or (64 if str(device).startswith("cuda") else 2)
        self.model = load_musicnn(name).to(device)

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        per_clip = self.model.embed_waveforms(list(waveforms), batch_size=self.batch_patches)
        return {layer: np.stack([clip[layer] for clip in per_clip]).astype(np.float32) for layer in self.layers}

    def provenance(self) -> Provenance:
        return Provenance(
            model_id=f"musicnn:{MODELS[self.name]} (PyPI musicnn==0.1.0)",
            revision=f"wheel-sha256:{self.model.weights_sha256}", sample_rate=SAMPLE_RATE, dim=self.dim,
            layers=self.layers, pooling="mean over 3 s patches",
            packages=package_versions(),
        )


PRECISIONS = MusicnnBackbone.precisions


def load(request) -> MusicnnBackbone:
    """The registry's loader (embed/registry.py)."""
    return MusicnnBackbone(request.kind, layers=request.layers, device=request.device)
