"""The musicnn tagger with its labels and per-clip embedding helpers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .checkpoint import read_checkpoint_from_wheel
from .frontend import SAMPLE_RATE, mel_patches_batch
from .model import Musicnn, tf_to_torch_state
from .weights import WHEEL_SHA256, ensure_wheel, read_labels

MODELS = {"musicnn-mtt": "MTT_musicnn", "musicnn-msd": "MSD_musicnn"}


class MusicnnTagger(Musicnn):
    """A :class:`Musicnn` carrying its checkpoint name, tag labels and weight provenance."""

    def __init__(self, model_name: str, labels: Sequence[str]):
        super().__init__(num_classes=len(labels))
        self.model_name = model_name
        self.labels = list(labels)
        self.weights_sha256 = WHEEL_SHA256

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embed_waveforms(self, waveforms: Sequence[np.ndarray], batch_size: int = 64) -> list[dict[str, np.ndarray]]:
        """Per-clip vectors for many mono 16 kHz clips; see :meth:`embed_waveform`.

        Patches of all clips are pooled into batches of ``batch_size`` so short clips do
        not leave the network underfed, then split back per clip.
        """
        per_clip = mel_patches_batch(list(waveforms), SAMPLE_RATE)
        counts = [p.shape[0] for p in per_clip]
        if not per_clip:
            return []
        patches = torch.cat(per_clip)
        outs: dict[str, list[torch.Tensor]] = {"penultimate": [], "pool": [], "tags": []}
        with torch.inference_mode():
            for start in range(0, patches.shape[0], batch_size):
                out = self(patches[start : start + batch_size].to(self.device))
                outs["penultimate"].append(out["penultimate"].float().cpu())
                outs["pool"].append(torch.cat([out["mean_pool"], out["max_pool"]], dim=1).float().cpu())
                outs["tags"].append(torch.sigmoid(out["logits"]).float().cpu())
        merged = {k: torch.cat(v) for k, v in outs.items()}
        results, start = [], 0
        for n in counts:
            results.append({k: v[start : start + n].mean(dim=0).numpy() for k, v in merged.items()})
            start += n
        return results

    def embed_waveform(self, waveform16k: np.ndarray) -> dict[str, np.ndarray]:
        """Per-clip vectors of one mono 16 kHz clip, each the mean over its 3 s patches.

        ``penultimate`` (200,), ``pool`` (1506,: mean_pool then max_pool of the mid-end
        features) and ``tags`` (50,: sigmoid probabilities, in ``self.labels`` order).
        """
        return self.embed_waveforms([waveform16k])[0]


def load_musicnn(which: str = "MTT_musicnn", cache_dir: Path | None = None) -> MusicnnTagger:
    """Build a musicnn tagger in eval mode with the released weights.

    ``which`` is a checkpoint name (``"MTT_musicnn"``, ``"MSD_musicnn"``) or a key of
    :data:`MODELS`. The weights are read from the cached, sha256-verified wheel.
    """
    model_name = MODELS.get(which, which)
    if model_name not in MODELS.values():
        raise ValueError(f"unknown musicnn model {which!r}; choose from {sorted(MODELS) + sorted(MODELS.values())}")
    wheel = ensure_wheel(cache_dir)
    tagger = MusicnnTagger(model_name, read_labels(wheel, model_name))
    tagger.load_state_dict(tf_to_torch_state(read_checkpoint_from_wheel(wheel, model_name)))
    return tagger.eval()
