"""`muq` and `muq-mulan`: MuQ (seed 001's singing scorer reads it) and the MuQ-MuLan music-text space,
through the `muq` PyPI package (`pip install -e ".[music]"`).

- `muq` (`OpenMuQ/MuQ-large-msd-iter`): 24 kHz waveform → MuQ's mel front end → conformer. Layer
  `i` is `hidden_states[i]` (0 = the conformer's input, 12 = after its final layer norm, the same
  as `last`); each is the mean over the clip's frames. `layers=all|6|3,6,9|last`.
- `muq-mulan` (`OpenMuQ/MuQ-MuLan-large`): layer `latent`, MuQ-MuLan's own `extract_audio_latents`:
  10 s clips (a short last clip is completed with the clip's start), each L2-normalised, averaged.
  Its text side, `embed_texts(strings)`, gives vectors in the same space (see embed/text.py).

Weights are read strictly: every tensor that computes the vectors must come from the checkpoint.
Clips are run in equal-length sub-batches (MuQ's waveform mask is coarse: padding would leak into
the convolutional front end), so a clip's vector never depends on its batch-mates.

Two shims keep muq 0.1.0 working on transformers 5, without touching its files: its conformer
config is a plain EasyDict, which lacks the `_attn_implementation` transformers 5 reads (eager is
added: the same attention as transformers 4's); and transformers 5's conformer encoder no longer
returns hidden states, so hooks collect them exactly as transformers 4 did (each layer's input,
then the final layer-normed output).
"""
from __future__ import annotations

import inspect
import io
import json
from collections import defaultdict
from contextlib import nullcontext, redirect_stdout
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from embed.backbone import Provenance, package_versions
from embed.extras import import_muq
from embed.hf import _quiet, choose_layers, embed_in_groups, pooled_in_order
from embed.hf_source import BackboneUnavailable, checkpoint_revision, fetch_checkpoint, files_digest

PRECISIONS = ("fp32", "bf16")  # bf16: autocast around the conformer (MuQ's mel runs in fp32 itself)
SAMPLE_RATE = 24000
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
MIN_SAMPLES = 4 * 240  # MuQ's front end needs a few mel frames


def load(request):
    muq = import_muq()
    _transformers5_shims(muq)
    device = torch.device(request.device if request.device not in ("", "auto") else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    precision = "bf16" if request.precision == "auto" and device.type == "cuda" else (
        "fp32" if request.precision == "auto" else request.precision)
    if request.kind == "muq-mulan":
        return MuQMuLanBackbone(request, muq, device, precision)
    return MuQBackbone(request, muq, device, precision)


class MuQBackbone:
    precisions = PRECISIONS
    sample_rate = SAMPLE_RATE
    max_seconds = None  # no window of its own (Whisper's is 30 s)

    def __init__(self, request, muq, device: torch.device, precision: str):
        self.name, self.device, self.precision = request.name, device, precision
        checkpoint = fetch_checkpoint(request.target, request.revision, ["config.json", *WEIGHTS],
                                      kind=request.kind, probe="config.json")
        self.checkpoint = checkpoint
        config = json.loads((checkpoint.folder / "config.json").read_text())
        self.module = muq.MuQ(config)
        weights = load_strict(self.module, checkpoint.folder, used=("model.conv.", "model.conformer."),
                              model=checkpoint.source.model_id)
        self.revision = checkpoint_revision(checkpoint, [weights])
        self.module = self.module.to(device).eval()
        depth, width = int(config.get("encoder_depth", 12)), int(config.get("encoder_dim", 1024))
        self.num_layers = depth
        dims = {**{str(i): width for i in range(depth + 1)}, "last": width}
        self.layers = choose_layers(request.layers or "last", "encoder", dims)
        self.dim = width

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        # clips too short for MuQ's front end stay NaN: the engine records them as failures
        return embed_in_groups(waves, equal_length_groups(waves, minimum=MIN_SAMPLES), self._run, self.layers,
                               self.dim, self.device, self.precision)

    def pool(self, waveforms: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """{layer: [B, dim]} as `embed` computes it, but differentiable (no inference mode, no autocast of
        its own): a LoRA head (head=lora) trains through exactly the pooling its frozen twin's vectors had."""
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        groups = equal_length_groups(waves, minimum=MIN_SAMPLES)
        if sum(len(idx) for idx in groups) != len(waves):
            raise ValueError(f"{self.name}: a clip is shorter than MuQ's front end needs ({MIN_SAMPLES} samples)")
        return pooled_in_order(waves, groups, self._run)

    def _run(self, batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Equal-length clips → {layer: mean over frames of that hidden state, fp32}."""
        states = self.module(torch.from_numpy(np.stack(batch)).to(self.device), output_hidden_states=True).hidden_states
        return {layer: (states[-1] if layer == "last" else states[int(layer)]).float().mean(dim=1)
                for layer in self.layers}

    def provenance(self) -> Provenance:
        return Provenance(model_id=self.checkpoint.source.model_id, revision=self.revision,
                          sample_rate=SAMPLE_RATE, dim=self.dim, layers=self.layers, pooling="mean over frames",
                          options={"kind": "muq", "precision": self.precision, "padding": "equal-length sub-batches"},
                          packages=package_versions("muq", "transformers"))


class MuQMuLanBackbone:
    precisions = PRECISIONS
    sample_rate = SAMPLE_RATE
    layers = ("latent",)

    def __init__(self, request, muq, device: torch.device, precision: str):
        self.name, self.device, self.precision = request.name, device, precision
        if (request.layers or "latent") not in ("latent", "last"):
            raise ValueError(f"layers={request.layers}: muq-mulan has one layer, latent")
        checkpoint = fetch_checkpoint(request.target, request.revision, ["config.json", *WEIGHTS],
                                      kind=request.kind, probe="config.json")
        self.checkpoint = checkpoint
        config = json.loads((checkpoint.folder / "config.json").read_text())
        # The audio (MuQ) and text (XLM-R) towers are named by hub id in the config; MuQ-MuLan's
        # constructor loads them with from_pretrained. They are fetched here first (pinned, cache-aware,
        # refused in one line offline) and handed over as local folders; their weights are then
        # replaced by the MuQ-MuLan checkpoint's own.
        self.towers = {}
        for side, probe in (("audio_model", "config.json"), ("text_model", "config.json")):
            name = config[side]["name"]
            tower = fetch_checkpoint(name, "", ["*.json", "*.model", "*.safetensors", "*.bin", "*.txt"],
                                     kind=request.kind, probe=probe)
            self.towers[side] = tower
            config[side]["name"] = str(tower.folder)
        with _quiet(progress=False), redirect_stdout(io.StringIO()):  # the hub mixin print()s as it loads
            self.module = muq.MuQMuLan(config)
        used = ("mulan.audio.model.model.conv.", "mulan.audio.model.model.conformer.", "mulan.audio.transformer.",
                "mulan.audio.proj.", "mulan.audio_to_latents.", "mulan.text.transformer.", "mulan.text.proj.",
                "mulan.text_to_latents.", "mulan.text.model.embeddings.", "mulan.text.model.encoder.")
        weights = load_strict(self.module, checkpoint.folder, used=used, model=checkpoint.source.model_id)
        self.revision = checkpoint_revision(checkpoint, [weights])
        self.module = self.module.to(device).eval()
        self.sample_rate = int(config["mulan"].get("sr", SAMPLE_RATE))
        self.clip_seconds = float(config["mulan"].get("clip_secs", 10))
        self.dim = int(config["mulan"].get("dim_latent", 512))

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        out = np.full((len(waveforms), self.dim), np.nan, np.float32)
        autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
                    if self.precision == "bf16" else nullcontext())
        with torch.inference_mode(), autocast:
            for i, wave in enumerate(waveforms):  # MuQ-MuLan's own loop: one clip at a time
                wave = np.asarray(wave, dtype=np.float32).reshape(-1)
                if len(wave) < MIN_SAMPLES:
                    continue
                latents = self.module(wavs=torch.from_numpy(wave)[None].to(self.device))
                out[i] = latents[0].float().cpu().numpy()
        return {"latent": out}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Strings → vectors in the audio latents' space (L2-normalised, MuQ-MuLan's text tower)."""
        with torch.inference_mode():
            return self.module(texts=list(texts)).float().cpu().numpy()

    def text_provenance(self) -> dict[str, str]:
        tower = self.towers["text_model"]
        return {"model_id": self.checkpoint.source.model_id, "revision": self.revision,
                "text_model": tower.source.model_id, "text_model_revision": tower_revision(tower),
                "dim": str(self.dim), "pooling": "MuQ-MuLan text tower (XLM-R → transformer → mean → projection), "
                                                 "L2-normalised"}

    def provenance(self) -> Provenance:
        audio, text = self.towers["audio_model"], self.towers["text_model"]
        return Provenance(
            model_id=self.checkpoint.source.model_id, revision=self.revision, sample_rate=self.sample_rate,
            dim=self.dim, layers=self.layers,
            pooling=(f"MuQ-MuLan extract_audio_latents: {self.clip_seconds:g} s clips (the last completed with the "
                     "clip's start), L2-normalised latents averaged"),
            options={"kind": "muq-mulan", "precision": self.precision,
                     "audio_tower": f"{audio.source.model_id}@{tower_revision(audio)}",
                     "text_tower": f"{text.source.model_id}@{tower_revision(text)}"},
            packages=package_versions("muq", "transformers"))


def tower_revision(tower) -> str:
    """A tower's hub commit; for a local folder, a sha256 of its config and tokenizer files (its weights
    are replaced by MuQ-MuLan's, which the backbone's own revision covers)."""
    if tower.revision:
        return tower.revision
    files = sorted(p for pattern in ("*.json", "*.model", "*.txt") for p in tower.folder.glob(pattern) if p.is_file())
    return files_digest(files) if files else "local"


def equal_length_groups(waves: list[np.ndarray], minimum: int) -> list[list[int]]:
    """Indices of usable clips grouped by exact length: no padding, so no batch-mate changes a vector."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, wave in enumerate(waves):
        if len(wave) >= minimum:
            groups[len(wave)].append(i)
    return list(groups.values())


def load_strict(module: torch.nn.Module, folder: Path, used: tuple[str, ...], model: str) -> Path:
    """Loads the folder's weights into `module`; refuses when a tensor that computes the vectors
    (a key starting with one of `used`) is missing or shaped differently, so nothing runs random."""
    path = next((folder / name for name in WEIGHTS if (folder / name).is_file()), None)
    if path is None:
        raise BackboneUnavailable(f"{model}: no {' or '.join(WEIGHTS)} in {folder}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    expected = module.state_dict()
    wrong = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise BackboneUnavailable(f"{model}: weight {wrong[0]} is shaped {tuple(state[wrong[0]].shape)}, the model "
                                  f"built from its config.json expects {tuple(expected[wrong[0]].shape)}")
    missing = [k for k in expected if k not in state and k.startswith(used)]
    if missing:
        raise BackboneUnavailable(f"{model}: {len(missing)} weights are not in the checkpoint (e.g. {missing[0]}), "
                                  "so the model would run partly random")
    module.load_state_dict(state, strict=False)
    return path


_SHIMMED = False


def _transformers5_shims(muq) -> None:
    """See the module docstring; each shim applies only where transformers lacks what muq expects."""
    global _SHIMMED
    if _SHIMMED:
        return
    from easydict import EasyDict
    from transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer import Wav2Vec2ConformerEncoder

    import muq.muq.models.muq_model as muq_model

    class ConformerConfig(EasyDict):
        def __init__(self, d=None, **kwargs):
            super().__init__(d, **kwargs)
            if "_attn_implementation" not in self:
                self._attn_implementation = "eager"

    muq_model.EasyDict = ConformerConfig
    if "output_hidden_states" not in inspect.signature(Wav2Vec2ConformerEncoder.forward).parameters:
        original_init = muq_model.MuQModel.__init__

        def init_with_hidden_states(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            collect_hidden_states(self.conformer)

        muq_model.MuQModel.__init__ = init_with_hidden_states
    _SHIMMED = True


def collect_hidden_states(encoder: torch.nn.Module) -> None:
    """Makes a transformers-5 conformer encoder return `hidden_states` as transformers 4 did."""
    captured: list[torch.Tensor] = []

    def layer_input(_module, args, kwargs):
        captured.append(args[0] if args else kwargs["hidden_states"])

    def start(_module, _args, _kwargs):
        captured.clear()

    def finish(_module, _args, _kwargs, output):
        output["hidden_states"] = (*captured, output["last_hidden_state"])
        captured.clear()
        return output

    encoder.register_forward_pre_hook(start, with_kwargs=True)
    for layer in encoder.layers:
        layer.register_forward_pre_hook(layer_input, with_kwargs=True)
    encoder.register_forward_hook(finish, with_kwargs=True)
