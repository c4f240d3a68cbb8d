"""`ecapa`: SpeechBrain's ECAPA-TDNN speaker embedding (`speechbrain/spkrec-ecapa-voxceleb`), through the
`speechbrain` package (`pip install -e ".[speech]"`).

The checkpoint is SpeechBrain's layout: `hyperparams.yaml` (which builds the modules) beside
`embedding_model.ckpt`, `mean_var_norm_emb.ckpt`, `classifier.ckpt` and `label_encoder.txt`, loaded by
`EncoderClassifier.from_hparams` from the local snapshot, with `pretrained_path` pointed at it so
nothing is fetched behind our back. Layer `embedding` is `encode_batch`: Fbank → sentence mean
normalisation → ECAPA-TDNN's attentive statistics pooling → 192-d.

A hyperparams.yaml is Python: its `!new:` / `!name:` / `!apply:` tags construct or call any importable
object. A yaml whose tags name anything outside `speechbrain.` is refused unless trust_remote_code=true.
Clips run in equal-length sub-batches, so a clip's vector never depends on its batch-mates.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from embed.backbone import Provenance, package_versions, select_layers
from embed.extras import require
from embed.hf_source import BackboneUnavailable, RemoteCodeRefused, checkpoint_revision, fetch_checkpoint

PRECISIONS = ("fp32",)
FILES = ["hyperparams.yaml", "embedding_model.ckpt", "mean_var_norm_emb.ckpt", "classifier.ckpt", "label_encoder.txt"]
TAG = re.compile(r"!(?:new|name|apply|module):\s*([A-Za-z0-9_.]+)")


def yaml_objects(text: str) -> list[str]:
    """The Python objects a HyperPyYAML file constructs or calls."""
    return TAG.findall(text)


class ECAPABackbone:
    precisions = PRECISIONS

    def __init__(self, request):
        self.name = request.name
        self.device = torch.device(request.device if request.device not in ("", "auto") else
                                   ("cuda" if torch.cuda.is_available() else "cpu"))
        self.layers = select_layers(request.layers, ("embedding",), default="embedding")
        require("speechbrain", "ecapa", "speech")  # before any download
        self.checkpoint = fetch_checkpoint(request.target, request.revision, FILES, kind=request.kind,
                                           probe="hyperparams.yaml")
        folder, model = self.checkpoint.folder, self.checkpoint.source.model_id
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise BackboneUnavailable(f"{model}: no {missing[0]} in {folder} (SpeechBrain's EncoderClassifier needs "
                                      f"{', '.join(FILES)})")
        foreign = [obj for obj in yaml_objects((folder / "hyperparams.yaml").read_text())
                   if not obj.startswith("speechbrain.")]
        self.trust_remote_code = bool(request.trust_remote_code)
        if foreign and not self.trust_remote_code:
            raise RemoteCodeRefused(f"{model}: hyperparams.yaml runs {foreign[0]}, which is not SpeechBrain's code; "
                                    "loading it is code execution, off by default: pass trust_remote_code=true")
        interfaces = require("speechbrain.inference.speaker", "ecapa", "speech")
        try:
            self.classifier = interfaces.EncoderClassifier.from_hparams(
                source=str(folder), savedir=None, overrides={"pretrained_path": str(folder)},
                run_opts={"device": str(self.device)})
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise BackboneUnavailable(f"{model}: SpeechBrain could not load it: {first}") from err
        self.classifier.eval()
        forget_lazy_proxies()
        self.sample_rate = int(getattr(self.classifier.audio_normalizer, "sample_rate", 16000))
        self.dim = int(self._probe_dim())
        self.revision = checkpoint_revision(self.checkpoint, [folder / name for name in FILES])

    def _probe_dim(self) -> int:
        with torch.inference_mode():
            return self.classifier.encode_batch(torch.zeros(1, self.sample_rate)).shape[-1]

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        out = np.full((len(waves), self.dim), np.nan, np.float32)
        groups = defaultdict(list)
        for i, wave in enumerate(waves):
            if len(wave) >= 400:  # one 25 ms Fbank frame
                groups[len(wave)].append(i)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            for idx in groups.values():
                batch = torch.from_numpy(np.stack([waves[i] for i in idx]))
                vectors = self.classifier.encode_batch(batch)  # [B, 1, dim]
                out[idx] = vectors.reshape(len(idx), -1).float().cpu().numpy()
        return {"embedding": out}

    def provenance(self) -> Provenance:
        return Provenance(model_id=self.checkpoint.source.model_id, revision=self.revision,
                          sample_rate=self.sample_rate, dim=self.dim, layers=self.layers,
                          pooling="ECAPA-TDNN attentive statistics pooling (EncoderClassifier.encode_batch)",
                          options={"kind": "ecapa", "trust_remote_code": str(self.trust_remote_code).lower()},
                          packages=package_versions("speechbrain", "torchaudio"))


def forget_lazy_proxies() -> None:
    """Drops SpeechBrain's not-yet-loaded lazy proxy modules from sys.modules.

    speechbrain 1.x registers proxies for its optional integrations (k2, flair, ...) in sys.modules;
    touching one imports the integration, and raises ImportError when its package is absent. Code
    that walks sys.modules (inspect.getmodule, hypothesis, torch.library) then fails long after the
    speaker model loaded. A dropped proxy still works where SpeechBrain holds it; importing its name
    later imports the module for real (with the same error when its package is missing).
    """
    import sys

    from speechbrain.utils.importutils import LazyModule

    for name, module in list(sys.modules.items()):
        if isinstance(module, LazyModule) and module.lazy_module is None:
            del sys.modules[name]


def load(request) -> ECAPABackbone:
    return ECAPABackbone(request)
