"""`hf:<hub id or local dir>`: any transformers audio encoder as a backbone.

Three kinds, told apart by `config.model_type`:

- encoder (wav2vec2, HuBERT, MERT, ...): `AutoModel`; layer `i` is `hidden_states[i]` (0 = the
  input of the first transformer layer), `last` is `last_hidden_state`; each is mean-pooled over
  the clip's valid frames only.
- whisper: the encoder of `WhisperModel` (the decoder is dropped at load, never run). Every clip
  is padded to 30 s by the feature extractor and pooled over its own frames; longer is refused.
- clap: the audio tower and projection of `ClapModel`. `projected` is what
  `ClapModel.get_audio_features` returns: the projection, L2-normalised; `pooled` is the audio
  tower's pooler output before the projection. Clips longer than the extractor's window (10 s)
  are cut into evenly spaced full windows whose vectors are averaged (`projected` re-normalised),
  so the extractor's random crops never run. A fused CLAP (`enable_fusion`, e.g. clap-fused =
  laion/clap-htsat-fused, seed 002's model) takes a long clip whole, as it was trained to: the
  extractor's `truncation="fusion"` input (the whole clip's mel squeezed to 10 s, plus three 10 s
  crops from its front, middle and back thirds) with `is_longer` set for clips over 10 s only. The
  crop positions are drawn at random by the extractor; they are drawn from a fixed seed per clip
  (numpy's global state is restored after), so a clip always gets the same vector.

A clip's vector never depends on its batch-mates: masked padding where the model supports it,
otherwise equal-length sub-batches (group-norm feature encoders, e.g. wav2vec2-base, MERT, see
the transformers note on `return_attention_mask`). HuBERT/wav2vec2's weight-normed positional
convolution is baked into a plain weight at load (same values, no per-call recompute).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from embed.backbone import Provenance, name_from_path, package_versions, select_layers
from embed.hf_source import (ALIASES, AliasSpec, BackboneUnavailable, RemoteCodeRefused, Source, hub_reachable,
                             offline_message, pinned_revision, read_config_dict, remote_code_check, resolve, revision)

FUSION_SEED = 0  # the fused CLAP extractor's crop positions, drawn per clip from this seed

__all__ = ["ALIASES", "AliasSpec", "BackboneUnavailable", "HFBackbone", "RemoteCodeRefused", "load_hf",
           "bake_parametrizations"]


class HFBackbone:
    """A loaded transformers audio encoder: `embed(waveforms) -> {layer: float32 [B, dim]}`."""

    precisions = ("fp32", "bf16")  # bf16: autocast around the forward, on CPU or CUDA

    def __init__(self, name: str, source: Source, kind: str, module: torch.nn.Module, extractor,
                 layers: str, device: torch.device, precision: str, trust_remote_code: bool, remote_code: bool,
                 requested_revision: str = ""):
        self.name, self.source, self.kind = name, source, kind
        self.module, self.extractor = module, extractor
        self.device, self.precision = device, precision
        self.trust_remote_code, self.remote_code = trust_remote_code, remote_code
        self.sample_rate = int(extractor.sampling_rate)
        # the longest clip embed() accepts (Whisper's 30 s window); None: any length
        self.max_seconds: float | None = extractor.n_samples / self.sample_rate if kind == "whisper" else None
        config = module.config
        self.fusion = kind == "clap" and bool(getattr(config, "enable_fusion", False))
        if kind == "clap":
            self.num_layers, dims = 0, {"projected": config.projection_dim, "pooled": config.hidden_size}
        else:
            self.num_layers = config.encoder_layers if kind == "whisper" else config.num_hidden_layers
            dims = {**{str(i): config.hidden_size for i in range(self.num_layers + 1)}, "last": config.hidden_size}
        self.layers = choose_layers(layers, kind, dims)
        self.dim = int(dims[self.layers[0]])
        # masked padding is exact only when the model takes a mask and no norm spans the time axis
        self.masked = (kind == "encoder" and "attention_mask" in extractor.model_input_names
                       and getattr(config, "feat_extract_norm", "layer") != "group")
        # frame counts follow from input lengths: Whisper's mel frames, or a raw waveform's samples
        self.raw_input = kind == "encoder" and "input_values" in extractor.model_input_names
        self.valid_frames = hasattr(module, "_get_feat_extract_output_lengths") and (
            kind == "whisper" or self.raw_input)
        self.revision = revision(source, config, remote_code, requested_revision)
        self._native_hidden: bool | None = None  # does forward(output_hidden_states=True) fill them?

    # -- embedding -------------------------------------------------------------------------

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        run = self._run_clap if self.kind == "clap" else self._run_encoder
        # clips too short for one frame stay NaN: the engine records them as failures
        return embed_in_groups(waves, self._sub_batches(waves), run, self.layers, self.dim, self.device, self.precision)

    def pool(self, waveforms: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """{layer: [B, dim]} as `embed` computes it, but differentiable (no inference mode, no autocast of
        its own): a LoRA head trains through exactly the pooling its frozen twin's vectors had."""
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waveforms]
        groups = self._sub_batches(waves)
        if sum(len(idx) for idx in groups) != len(waves):
            raise ValueError(f"{self.name}: a clip is too short for one frame")
        run = self._run_clap if self.kind == "clap" else self._run_encoder
        return pooled_in_order(waves, groups, run)

    def _sub_batches(self, waves: list[np.ndarray]) -> list[list[int]]:
        usable = [i for i, w in enumerate(waves) if len(w) > 0 and self._frames(len(w)) > 0]
        if self.kind != "encoder" or self.masked:
            return [usable] if usable else []
        by_length = defaultdict(list)
        for i in usable:
            by_length[len(waves[i])].append(i)
        return list(by_length.values())

    def _frames(self, samples: int) -> int:
        if self.raw_input and self.valid_frames:
            return int(self.module._get_feat_extract_output_lengths(torch.tensor(samples)))
        return 1

    def _features(self, batch: list[np.ndarray], **options):
        """The feature extractor, in fp32 even inside the caller's autocast (Whisper's uses torch STFT)."""
        with torch.autocast("cpu", enabled=False):
            return self.extractor(batch, sampling_rate=self.sample_rate, return_tensors="pt", **options)

    def _run_encoder(self, batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        if self.kind == "whisper":
            longest = max(len(w) for w in batch)
            if longest > self.extractor.n_samples:
                raise ValueError(f"{self.name}: whisper takes at most {self.max_seconds:g} s per clip, got "
                                 f"{longest / self.sample_rate:.1f} s: crop or chunk it (max_seconds=30)")
            inputs = self._features(batch, return_attention_mask=True)
            in_lengths = inputs.pop("attention_mask").sum(-1)  # mel frames; the encoder takes no mask
        else:
            inputs = self._features(batch, padding=True, return_attention_mask=self.masked)
            mask = inputs.pop("attention_mask", None)
            if self.masked:
                inputs["attention_mask"] = mask
                in_lengths = mask.sum(-1)
            else:  # one length per sub-batch
                in_lengths = torch.tensor([len(w) for w in batch])
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        want_hidden = any(layer != "last" for layer in self.layers)
        ask_native = want_hidden and self._native_hidden is not False
        with self._tap(want_hidden) as tapped:
            out = self.module(**inputs, output_hidden_states=ask_native)
        hidden = out.hidden_states if ask_native else None
        if want_hidden and not hidden:
            hidden = tapped  # the input of block 0, then each block's output
            self._native_hidden = False
        elif want_hidden:
            self._native_hidden = True
        if want_hidden and (len(hidden) != self.num_layers + 1 or hidden[-1].shape != out.last_hidden_state.shape):
            raise BackboneUnavailable(f"{self.name}: expected {self.num_layers + 1} hidden states shaped like the "
                                      f"last one, got {len(hidden)}; only layers=last is available")
        last = out.last_hidden_state
        frames = None
        if self.valid_frames:
            frames = self.module._get_feat_extract_output_lengths(in_lengths).clamp(1, last.shape[1]).to(self.device)
        pooled = {}
        for layer in self.layers:
            states = last if layer == "last" else hidden[int(layer)]
            pooled[layer] = masked_mean(states, frames)
        return pooled

    @contextmanager
    def _tap(self, want_hidden: bool):
        """Hooks that collect per-layer hidden states for models whose forward drops them (e.g. MERT's
        remote code under transformers 5, which returns `hidden_states=None`)."""
        captured: list[torch.Tensor] = []
        if not want_hidden or self._native_hidden:
            yield captured
            return
        blocks = transformer_blocks(self.module, self.num_layers)
        if blocks is None:  # nothing to hook: the native hidden states had better be there
            yield captured
            return
        def block_input(_module, args, kwargs):
            captured.append(args[0] if args else kwargs["hidden_states"])

        def block_output(_module, _args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)

        handles = [blocks[0].register_forward_pre_hook(block_input, with_kwargs=True)]
        handles += [block.register_forward_hook(block_output) for block in blocks]
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()

    def _run_clap(self, batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        window = self.extractor.nb_max_samples
        pieces, owner = [], []
        if self.fusion:
            features = torch.cat([self._fusion_features(wave) for wave in batch])
            inputs = {"input_features": features}
            is_longer = torch.tensor([[len(wave) > window] for wave in batch])
            owner = list(range(len(batch)))
        else:
            for i, wave in enumerate(batch):
                for start in window_starts(len(wave), window):
                    pieces.append(wave[start:start + window])
                    owner.append(i)
            inputs = self._features(pieces)
            # no window is longer than the extractor's max: no fusion, and not its random "is_longer" pick
            is_longer = torch.zeros_like(inputs["is_longer"])
        audio = self.module.audio_model(input_features=inputs["input_features"].to(self.device),
                                        is_longer=is_longer.to(self.device))
        pooled = audio.pooler_output.float()
        projected = torch.nn.functional.normalize(self.module.audio_projection(audio.pooler_output).float(), dim=-1)
        index = torch.tensor(owner, device=self.device)
        counts = torch.bincount(index, minlength=len(batch)).clamp(min=1).unsqueeze(1).float()

        def mean(vectors: torch.Tensor) -> torch.Tensor:  # over each clip's windows
            sums = torch.zeros(len(batch), vectors.shape[1], device=vectors.device).index_add_(0, index, vectors)
            return sums / counts

        result = {"projected": torch.nn.functional.normalize(mean(projected), dim=-1), "pooled": mean(pooled)}
        return {layer: result[layer] for layer in self.layers}

    def _fusion_features(self, wave: np.ndarray) -> torch.Tensor:
        """One clip's fusion input [1, 4, frames, mels]; the extractor's random crop positions drawn from a
        fixed seed (and only for this clip: a batch-mate changes nothing)."""
        state = np.random.get_state()
        np.random.seed(FUSION_SEED)
        try:
            return self._features([wave], truncation="fusion")["input_features"]
        finally:
            np.random.set_state(state)

    # -- identity ---------------------------------------------------------------------------

    def provenance(self) -> Provenance:
        if self.kind == "clap" and self.fusion:
            pooling = ("projected: L2-normalised audio projection (ClapModel.get_audio_features); pooled: audio "
                       f"tower pooler output; clips over {self.extractor.nb_max_samples / self.sample_rate:g} s: "
                       "the fusion input (whole clip squeezed, three crops at positions drawn with numpy seed "
                       f"{FUSION_SEED}), is_longer set for them only")
        elif self.kind == "clap":
            pooling = ("projected: L2-normalised audio projection (ClapModel.get_audio_features); pooled: audio "
                       f"tower pooler output; clips over {self.extractor.nb_max_samples / self.sample_rate:g} s: "
                       "mean over evenly spaced full windows, projected re-normalised")
        elif self.valid_frames:
            pooling = "mean over valid frames"
        else:
            pooling = "mean over all frames"
        padding = {"whisper": "every clip padded to 30 s",
                   "clap": "fusion input per clip" if self.fusion else "repeat-padded windows"}.get(
            self.kind, "attention mask" if self.masked else "equal-length sub-batches")
        options = {"kind": self.kind, "precision": self.precision, "padding": padding,
                   "trust_remote_code": str(self.trust_remote_code).lower(),
                   "remote_code": str(self.remote_code).lower()}
        return Provenance(model_id=self.source.model_id, revision=self.revision, sample_rate=self.sample_rate,
                          dim=self.dim, layers=self.layers, pooling=pooling, options=options,
                          packages=package_versions("transformers"))


def choose_layers(requested: str, kind: str, dims: dict[str, int]) -> tuple[str, ...]:
    """`last|all|3,6,9|projected` → layer names; refuses layers of different sizes in one backbone."""
    requested = requested or "last"
    if kind == "clap":
        names = ",".join("projected" if p.strip() == "last" else p for p in requested.split(","))
        chosen = select_layers(names, tuple(dims))
    elif requested == "all":
        chosen = tuple(layer for layer in dims if layer != "last")  # `last` repeats the top layer
    else:
        chosen = select_layers(requested, tuple(dims))
    chosen = tuple(dict.fromkeys(chosen))
    first = chosen[0]
    other = next((layer for layer in chosen if dims[layer] != dims[first]), None)
    if other is not None:
        raise ValueError(f"layers={requested}: {first} is {dims[first]}-d but {other} is {dims[other]}-d, and one "
                         "backbone stores one vector size (its column is FLOAT[dim]): embed them under two names, "
                         f"e.g. layers={first}, then layers={other} name=<model>-{other}")
    return chosen


def masked_mean(states: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """[B, T, D] → [B, D], the mean over each row's first `frames[b]` steps (all when None)."""
    states = states.float()
    if frames is None:
        return states.mean(dim=1)
    valid = (torch.arange(states.shape[1], device=states.device)[None, :] < frames[:, None]).float()
    return (states * valid[..., None]).sum(dim=1) / frames[:, None].float()


def window_starts(length: int, window: int) -> list[int]:
    """Starts of evenly spaced full windows covering a clip (one when it fits)."""
    if length <= window:
        return [0]
    n = math.ceil(length / window)
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


def embed_in_groups(waves: list[np.ndarray], groups: list[list[int]],
                    run: Callable[[list[np.ndarray]], dict[str, torch.Tensor]], layers: Sequence[str], dim: int,
                    device: torch.device, precision: str) -> dict[str, np.ndarray]:
    """{layer: float32 [clips, dim]}: `run` over each sub-batch of clip indices under inference mode
    (and bf16 autocast), rows of clips in no sub-batch left NaN (the backbones' `embed`)."""
    out = {layer: np.full((len(waves), dim), np.nan, np.float32) for layer in layers}
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with torch.inference_mode(), autocast:
        for idx in groups:
            for layer, vectors in run([waves[i] for i in idx]).items():
                out[layer][idx] = vectors.float().cpu().numpy()
    return out


def pooled_in_order(waves: list[np.ndarray], groups: list[list[int]],
                    run: Callable[[list[np.ndarray]], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """{layer: [B, dim]} of `run` over each sub-batch of clip indices, back in the clips' order
    (autograd intact: the differentiable `pool` of HF and MuQ backbones)."""
    pieces: dict[str, list[torch.Tensor]] = defaultdict(list)
    for idx in groups:
        for layer, vectors in run([waves[i] for i in idx]).items():
            pieces[layer].append(vectors)
    order = torch.tensor([i for idx in groups for i in idx]).argsort()
    return {layer: torch.cat(parts)[order.to(parts[0].device)] for layer, parts in pieces.items()}


def transformer_blocks(module: torch.nn.Module, count: int) -> torch.nn.ModuleList | None:
    """The ModuleList of `count` transformer blocks: `encoder.layers` for wav2vec2-likes, preferred
    over other lists of that length (a conv feature encoder's layers)."""
    lists = [("encoder" not in name, not name.endswith(("layers", "layer")), name.count("."), name, m)
             for name, m in module.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == count]
    return min(lists, key=lambda t: t[:4])[4] if lists else None


def bake_parametrizations(module: torch.nn.Module) -> int:
    """Turn parametrised weights (weight norm) into plain weights holding the same values.

    wav2vec2/HuBERT/MERT wrap the positional conv in `parametrizations.weight_norm` (or the older
    hook-based `weight_norm`); a frozen backbone gains nothing from recomputing it every call.
    """
    from torch.nn.utils import parametrize
    from torch.nn.utils.weight_norm import WeightNorm, remove_weight_norm

    baked = 0
    for sub in list(module.modules()):
        if parametrize.is_parametrized(sub):
            for tensor_name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, tensor_name, leave_parametrized=True)
                baked += 1
        for hook in list(sub._forward_pre_hooks.values()):
            if isinstance(hook, WeightNorm):
                remove_weight_norm(sub, hook.name)
                baked += 1
    return baked


def model_kind(model_type: str) -> str:
    return {"whisper": "whisper", "clap": "clap", "clap_audio_model": "clap"}.get(model_type, "encoder")


@contextmanager
def _quiet(progress: bool):
    """transformers' load reports and warnings off (and its progress bars, unless downloading)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars and not progress:
            hf_logging.enable_progress_bar()


def _load_module(kind: str, model_id: str, config, options: dict) -> torch.nn.Module:
    """The part of the model that runs; refuses a checkpoint that leaves any of its weights random."""
    from transformers import AutoModel, ClapAudioModelWithProjection

    if kind == "clap":  # audio tower + projection only; the text tower's weights are skipped
        module, info = ClapAudioModelWithProjection.from_pretrained(model_id, output_loading_info=True, **options)
    else:
        module, info = AutoModel.from_pretrained(model_id, config=config, output_loading_info=True, **options)
    missing = sorted(key if isinstance(key, str) else key[0]
                     for key in [*info["missing_keys"], *info["mismatched_keys"]])
    if kind == "whisper":  # WhisperModel → its encoder; the decoder goes with the discarded wrapper
        module = module.get_encoder()
        missing = [key for key in missing if key.startswith("encoder.")]
    if missing:
        raise BackboneUnavailable(f"{model_id}: {len(missing)} weights are not in the checkpoint (e.g. {missing[0]}), "
                                  "so the model would run partly random")
    return module


# transformers 5 loads in the checkpoint's dtype unless told; 4.x before 4.56 calls the argument torch_dtype
_TRANSFORMERS = tuple(int(part) for part in package_versions("transformers").get("transformers", "5.0").split(".")[:2])
_DTYPE_KEY = "dtype" if _TRANSFORMERS >= (4, 56) else "torch_dtype"


def _device(device: str) -> torch.device:
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_hf(model: str, layers: str = "last", device: str = "cpu", precision: str = "fp32",
            trust_remote_code: bool | None = None, name: str | None = None, revision: str = "") -> HFBackbone:
    """Load an alias (see ALIASES), `hf:<hub id>` or `hf:<local dir>` as a backbone.

    `trust_remote_code`: None = only for aliases known to need it; True runs the repository's
    own Python code. `revision`: the hub commit (or tag) to load; an alias defaults to its pin,
    and one that runs remote code loads only a commit. `precision`: fp32, or bf16 (autocast;
    changes numbers, opt-in on CPU).
    Raises BackboneUnavailable (a RuntimeError) in one line when the model cannot be had here.
    """
    source = resolve(model)
    spec = source.spec
    trust = bool(spec.trust_remote_code if trust_remote_code is None and spec else trust_remote_code)
    at = pinned_revision(source, revision) or None  # before the hub is asked anything
    torch_device = _device(device)
    if precision == "auto":
        precision = "bf16" if torch_device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision={precision}: use fp32 or bf16")
    offline = not source.local and not hub_reachable(source.model_id, at or "")
    options = {"trust_remote_code": trust, "local_files_only": offline, "revision": at, _DTYPE_KEY: torch.float32,
               # transformers 5's AutoModel looks for a PEFT adapter without passing local_files_only on:
               # offline, that cost five retries against the hub (~23 s) before loading from the cache
               "adapter_kwargs": {"local_files_only": offline}}
    try:
        with _quiet(progress=not (source.local or offline)):
            remote_code = remote_code_check(source, read_config_dict(source, offline, at or ""), trust)
            from transformers import AutoConfig, AutoFeatureExtractor

            config = AutoConfig.from_pretrained(source.model_id, trust_remote_code=trust, local_files_only=offline,
                                                revision=at)
            extractor = AutoFeatureExtractor.from_pretrained(source.model_id, trust_remote_code=trust,
                                                             local_files_only=offline, revision=at)
            kind = model_kind(config.model_type)
            module = _load_module(kind, source.model_id, config, options)
    except BackboneUnavailable:
        raise
    except Exception as err:
        if offline:
            raise BackboneUnavailable(offline_message(source.model_id, at or "")) from None
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BackboneUnavailable(f"cannot load {source.model_id}: {first}") from err
    bake_parametrizations(module)
    module = module.to(torch_device).eval()
    label = name or source.alias or name_from_path(source.model_id, fallback="hf-model")
    return HFBackbone(label, source, kind, module, extractor, layers, torch_device, precision, trust, remote_code,
                      at or "")


PRECISIONS = HFBackbone.precisions


def load(request) -> HFBackbone:
    """The registry's loader: an alias loads by its name (its pin and remote-code policy), `hf:X` by X."""
    model = request.backbone if request.kind != "hf" else f"hf:{request.target}"
    return load_hf(model, layers=request.layers or "last", device=request.device, precision=request.precision,
                   trust_remote_code=request.trust_remote_code, revision=request.revision, name=request.name)
