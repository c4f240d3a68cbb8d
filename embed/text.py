"""The text side of a joint audio-text backbone: strings → vectors in its audio vectors' space.

    from embed.text import encode
    vectors = encode("muq-mulan", ["sad piano ballad", "fast guitar solo"])
    vectors.matrix           # float32 [2, 512], L2-normalised, comparable with muq-mulan's `latent` vectors
    vectors.provenance       # the audio-text checkpoint and the text model inside it, with revisions

Retrieval and playlist heads call this once per text set and keep the result: the model loads once
per process (and is kept for the next call with the same arguments).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from embed import registry
from embed.hf_source import BackboneUnavailable


@dataclass
class TextVectors:
    matrix: np.ndarray            # float32 [len(texts), dim]
    provenance: dict[str, str]    # model_id, revision, text_model, text_model_revision, dim, pooling


@lru_cache(maxsize=2)
def _model(backbone: str, device: str, revision: str):
    model = registry.load(backbone, "", device, "fp32", None, registry.revision_for(backbone, revision))
    if not hasattr(model, "embed_texts"):
        raise BackboneUnavailable(f"{backbone} has no text side: text vectors come from a joint audio-text "
                                  "backbone (muq-mulan)")
    return model


def encode(backbone: str, texts: Sequence[str], device: str = "cpu", revision: str = "",
           batch_size: int = 64) -> TextVectors:
    """Vectors for `texts` from `backbone`'s text tower, in the space of its audio vectors."""
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()), None)
    if bad is not None:
        raise ValueError(f"text {bad} is {texts[bad]!r}: every text must be a non-empty string")
    model = _model(registry.resolve(backbone), device, revision)
    parts = [model.embed_texts(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    matrix = np.concatenate(parts).astype(np.float32) if parts else np.empty((0, model.dim), np.float32)
    return TextVectors(matrix, model.text_provenance())
