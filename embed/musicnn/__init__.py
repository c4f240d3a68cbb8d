"""musicnn music taggers (Pons & Serra 2019) in PyTorch, with the released weights.

The MTT and MSD musicnn checkpoints are read straight out of the PyPI wheel
``musicnn==0.1.0`` (cached and sha256-verified; neither musicnn nor TensorFlow is
installed). The port reproduces the TensorFlow graph to ~1e-6 relative error.

Usage::

    tagger = load_musicnn("musicnn-mtt")
    vecs = tagger.embed_waveform(wave16k)  # {"penultimate": (200,), "pool": (1506,), "tags": (50,)}
"""

from .checkpoint import read_bundle, read_checkpoint_from_wheel
from .frontend import log_mel, mel_patches, mel_patches_batch
from .model import Musicnn
from .tagger import MODELS, MusicnnTagger, load_musicnn
from .weights import WHEEL_SHA256, WeightsUnavailableError, default_cache_dir, ensure_wheel, wheel_sha256

__all__ = [
    "MODELS",
    "Musicnn",
    "MusicnnTagger",
    "WHEEL_SHA256",
    "WeightsUnavailableError",
    "default_cache_dir",
    "ensure_wheel",
    "load_musicnn",
    "log_mel",
    "mel_patches",
    "mel_patches_batch",
    "read_bundle",
    "read_checkpoint_from_wheel",
    "wheel_sha256",
]
