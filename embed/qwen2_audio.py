"""`qwen2-audio`: the audio tower of Qwen2-Audio-7B(-Instruct), without its 7B language model.

Only the encoder's and the multimodal projector's tensors are read: the checkpoint's
`model.safetensors.index.json` says which shards hold `audio_tower.*` and `multi_modal_projector.*`,
only those shards are downloaded, and only those tensors are read out of them (safetensors reads
tensors one by one); shards holding only the language model are never fetched or opened.

Input is Whisper-style, as Qwen2-Audio's processor prepares it: 16 kHz → WhisperFeatureExtractor (128
mel bins) padded to 30 s, with the padded frames masked in the encoder's attention as
`Qwen2AudioModel` masks them. Longer clips are refused by embed(); the engine's `max_seconds=30
chunking=mean` averages the 30 s windows of a long clip. Layers, each a mean over the clip's own
frames: `0`..`32` the encoder's hidden states (0 = input of the first layer), `last` its output
(after the 2x average pool and final layer norm, 1280-d), `projector` the multimodal projector's
output on it (what the language model receives, 4096-d). A stored name holds one vector size: embed
`projector` under its own name.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from embed.backbone import Provenance, package_versions
from embed.hf import _quiet, choose_layers, masked_mean
from embed.hf_source import BackboneUnavailable, checkpoint_revision, fetch_checkpoint

PRECISIONS = ("fp32", "bf16")
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
CONFIGS = ["config.json", "preprocessor_config.json", INDEX]
# the published checkpoints use transformers 4's names; transformers 5 saves them under `model.`
TOWER_PREFIXES = ("audio_tower.", "model.audio_tower.")
PROJECTOR_PREFIXES = ("multi_modal_projector.", "model.multi_modal_projector.")


def needed_tensors(weight_map: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{checkpoint key: (part, key inside that part)} for the tower and the projector; part is tower|projector."""
    needed = {}
    for key in weight_map:
        for part, prefixes in (("tower", TOWER_PREFIXES), ("projector", PROJECTOR_PREFIXES)):
            prefix = next((p for p in prefixes if key.startswith(p)), None)
            if prefix:
                needed[key] = (part, key[len(prefix):])
    return needed


def read_tensors(folder: Path, files: dict[str, list[str]]) -> dict[str, torch.Tensor]:
    """The listed tensors of each file, nothing else (safetensors reads tensor by tensor)."""
    from safetensors import safe_open

    tensors = {}
    for file, keys in files.items():
        with safe_open(str(folder / file), framework="pt") as handle:
            for key in keys:
                tensors[key] = handle.get_tensor(key)
    return tensors


class Qwen2AudioTower:
    precisions = PRECISIONS

    def __init__(self, request):
        from transformers import Qwen2AudioConfig, WhisperFeatureExtractor
        from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder

        self.name = request.name
        self.device = torch.device(request.device if request.device not in ("", "auto") else
                                   ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = ("bf16" if self.device.type == "cuda" else "fp32") if request.precision == "auto" \
            else request.precision
        meta = fetch_checkpoint(request.target, request.revision, CONFIGS, kind=request.kind, probe="config.json")
        model = meta.source.model_id
        if (meta.folder / INDEX).is_file():
            weight_map = json.loads((meta.folder / INDEX).read_text()).get("weight_map", {})
        elif meta.source.local and (meta.folder / SINGLE).is_file():
            from safetensors import safe_open

            with safe_open(str(meta.folder / SINGLE), framework="pt") as handle:
                weight_map = {key: SINGLE for key in handle.keys()}
        else:
            raise BackboneUnavailable(f"{model}: no {INDEX} (nor a single {SINGLE}): not a Qwen2-Audio checkpoint")
        needed = needed_tensors(weight_map)
        if not any(part == "tower" for part, _ in needed.values()):
            raise BackboneUnavailable(f"{model}: its weights have no audio_tower.* tensors: not a Qwen2-Audio checkpoint")
        self.shards = sorted({weight_map[key] for key in needed})
        # the second fetch downloads the tower's shards only (a local folder already has them)
        files = fetch_checkpoint(request.target, request.revision, self.shards, kind=request.kind,
                                 probe="config.json") if not meta.source.local else meta
        self.checkpoint = files
        absent = [shard for shard in self.shards if not (files.folder / shard).is_file()]
        if absent:
            raise BackboneUnavailable(f"{model}: shard {absent[0]} (named by {INDEX}) is not in {files.folder}")
        by_file: dict[str, list[str]] = {}
        for key in needed:
            by_file.setdefault(weight_map[key], []).append(key)
        raw = read_tensors(files.folder, by_file)
        tower_state = {inner: raw[key] for key, (part, inner) in needed.items() if part == "tower"}
        projector_state = {inner: raw[key] for key, (part, inner) in needed.items() if part == "projector"}

        with _quiet(progress=False):
            config = Qwen2AudioConfig.from_pretrained(str(meta.folder))
            self.extractor = WhisperFeatureExtractor.from_pretrained(str(meta.folder))
        audio_config = config.audio_config
        audio_config._attn_implementation = "eager"  # exact and everywhere; the tower is small next to the LM
        with torch.device("meta"):  # no random init of weights that are about to be replaced
            self.tower = Qwen2AudioEncoder(audio_config)
            self.projector = torch.nn.Linear(audio_config.d_model, config.text_config.hidden_size, bias=True)
        for module, state, what in ((self.tower, tower_state, "audio_tower"),
                                    (self.projector, projector_state, "multi_modal_projector.linear")):
            if module is self.projector:
                state = {k.removeprefix("linear."): v for k, v in state.items()}
            expected = module.state_dict()
            missing = [k for k in expected if k not in state]
            wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
            if missing or wrong:
                key = (missing or wrong)[0]
                raise BackboneUnavailable(f"{model}: {what}.{key} is {'missing from' if missing else 'misshapen in'} "
                                          "the checkpoint, so the tower would run partly random")
            module.load_state_dict({k: v.float() for k, v in state.items() if k in expected}, strict=True,
                                   assign=True)
        self.tower = self.tower.to(self.device).eval()
        self.projector = self.projector.to(self.device).eval()
        self.sample_rate = int(self.extractor.sampling_rate)
        self.max_seconds = self.extractor.n_samples / self.sample_rate
        self.num_layers = int(audio_config.encoder_layers)
        width, projected = int(audio_config.d_model), int(config.text_config.hidden_size)
        dims = {**{str(i): width for i in range(self.num_layers + 1)}, "last": width, "projector": projected}
        requested = request.layers or "last"
        if requested == "all":
            requested = ",".join(str(i) for i in range(self.num_layers + 1))
        self.layers = choose_layers(requested, "encoder", dims)
        self.dim = dims[self.layers[0]]
        self.revision = checkpoint_revision(files, [files.folder / shard for shard in self.shards])

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        from transformers.masking_utils import create_bidirectional_mask

        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        longest = max((len(w) for w in waves), default=0)
        if longest > self.extractor.n_samples:
            raise ValueError(f"{self.name}: Qwen2-Audio takes at most {self.max_seconds:g} s per clip, got "
                             f"{longest / self.sample_rate:.1f} s: chunk it (max_seconds=30 chunking=mean)")
        out = {layer: np.full((len(waves), self.dim), np.nan, np.float32) for layer in self.layers}
        usable = [i for i, w in enumerate(waves) if len(w) >= self.extractor.hop_length * 4]
        if not usable:
            return out
        with torch.autocast("cpu", enabled=False):  # the feature extractor in fp32, as its processor runs it
            inputs = self.extractor([waves[i] for i in usable], sampling_rate=self.sample_rate, return_tensors="pt",
                                    return_attention_mask=True, padding="max_length")
        features = inputs["input_features"].to(self.device)
        feat_lengths, out_lengths = self.tower._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
        positions = (features.shape[-1] - 2) // 2 + 1
        valid = (torch.arange(positions)[None, :] < feat_lengths[:, None]).long().to(self.device)
        autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
                    if self.precision == "bf16" else nullcontext())
        with torch.inference_mode(), autocast:
            mask = create_bidirectional_mask(config=self.tower.config,
                                             inputs_embeds=torch.zeros(len(usable), positions, 1, device=self.device),
                                             attention_mask=valid)
            with collect_layers(self.tower) as hidden:
                last = self.tower(features, attention_mask=mask).last_hidden_state
            pooled = {}
            for layer in self.layers:
                if layer == "last":
                    pooled[layer] = masked_mean(last, out_lengths.to(self.device))
                elif layer == "projector":
                    pooled[layer] = masked_mean(self.projector(last), out_lengths.to(self.device))
                else:
                    pooled[layer] = masked_mean(hidden[int(layer)], feat_lengths.to(self.device))
        for layer, vectors in pooled.items():
            out[layer][usable] = vectors.float().cpu().numpy()
        return out

    def provenance(self) -> Provenance:
        return Provenance(
            model_id=self.checkpoint.source.model_id, revision=self.revision, sample_rate=self.sample_rate,
            dim=self.dim, layers=self.layers,
            pooling=("mean over the clip's own frames (padding to 30 s masked in attention as Qwen2AudioModel "
                     "masks it); hidden layers at the encoder's 50 Hz, last and projector after its 2x pool"),
            options={"kind": "qwen2-audio", "precision": self.precision, "shards_read": ",".join(self.shards),
                     "language_model": "not loaded"},
            packages=package_versions("transformers", "safetensors"))


class collect_layers:
    """Hidden states of a Qwen2AudioEncoder: the first layer's input, then each layer's output."""

    def __init__(self, tower):
        self.tower, self.states, self.handles = tower, [], []

    def __enter__(self) -> list[torch.Tensor]:
        layers = self.tower.layers
        self.handles.append(layers[0].register_forward_pre_hook(
            lambda _m, args, kwargs: self.states.append(args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True))
        for layer in layers:
            self.handles.append(layer.register_forward_hook(
                lambda _m, _a, output: self.states.append(output[0] if isinstance(output, tuple) else output)))
        return self.states

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def load(request) -> Qwen2AudioTower:
    return Qwen2AudioTower(request)
