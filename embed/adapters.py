"""A backbone made trainable: peft LoRA on its attention projections, and/or its last blocks unfrozen.

    from embed.adapters import Settings, adapt
    model = adapt(backbone.module, Settings(rank=8, alpha=16))       # adapters injected in place
    save(model, folder)                                               # adapter/ (+ unfrozen.safetensors)
    restore(load_hf(...).module, folder)                              # the adapted model again

`adapt` injects the adapters into the module it is given (peft replaces the target Linear layers
inside it), so code that holds the module — the embedding backbone's forward and pooling — runs
the adapted model unchanged. Every base weight is frozen except the last `unfreeze_layers`
transformer blocks (seed 001's alternative to adapters, and the partial-unfreezing ablation).

The run folder a LoRA run leaves (the contract with `backbone=lora:<run_id>`):
    adapter/                 peft `save_pretrained` (adapter_config.json + adapter_model.safetensors)
    unfrozen.safetensors     the unfrozen blocks' weights under base-model key names (unfreeze_layers > 0)
    lora.json                base spec, revision, layer, sample rate, max_seconds, `adapter_sha256` (`digest`) of the two above
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ADAPTER_DIR = "adapter"
UNFROZEN_FILE = "unfrozen.safetensors"

# q/k/v/out of self-attention, by config.model_type (a model whose config has none, as MuQ's, by
# its class name in lower case); anything else falls back to DEFAULT_TARGETS (wav2vec2, HuBERT,
# MERT, data2vec-audio, WavLM and Whisper's encoder all use these names)
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
TARGETS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "clap": ("query", "key", "value"),
    "clap_audio_model": ("query", "key", "value"),
    "muq": ("linear_q", "linear_k", "linear_v", "linear_out"),  # its wav2vec2-conformer's self_attn (seed 001's)
}
TRAINABLE_LAYERS = (nn.Linear, nn.Conv1d)


class AdaptError(ValueError):
    """The model cannot be adapted as asked; the message is one line naming the key."""


@dataclass
class Settings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()     # empty: the architecture's defaults
    unfreeze_layers: int = 0                 # the last N transformer blocks train in full
    gradient_checkpointing: bool = False
    # the pooled hidden state is the output of the first N blocks (layer=N); 0: of them all. Blocks
    # after it never touch the loss: default targets and unfrozen blocks are taken from the first N
    pooled_blocks: int = 0


def model_type(model: nn.Module) -> str:
    return getattr(getattr(model, "config", None), "model_type", "") or type(model).__name__.lower()


def default_targets(model: nn.Module) -> tuple[str, ...]:
    return TARGETS_BY_TYPE.get(model_type(model), DEFAULT_TARGETS)


def check_targets(model: nn.Module, targets: tuple[str, ...]) -> None:
    """Each target names at least one Linear/Conv1d (by its last name component or a dotted suffix)."""
    names = [name for name, module in model.named_modules() if isinstance(module, TRAINABLE_LAYERS)]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        have = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise AdaptError(f"target_modules={','.join(targets)}: {type(model).__name__} has no "
                         f"{', '.join(missing)} (its linear layers: {', '.join(have[:12])}"
                         f"{', …' if len(have) > 12 else ''})")


def blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks, in order (the embedding code's own finder: the hooks it pools from)."""
    from embed.hf import transformer_blocks

    config = model.config
    count = getattr(config, "encoder_layers", None) if model_type(model) == "whisper" else None
    count = count or getattr(config, "num_hidden_layers", None) or getattr(config, "encoder_depth", None)  # MuQ
    found = transformer_blocks(model, count) if count else None
    if found is None:
        raise AdaptError(f"unfreeze_layers: cannot find the transformer blocks of {type(model).__name__}")
    return found


def adapt(model: nn.Module, settings: Settings) -> nn.Module:
    """`model` with LoRA adapters injected in place (rank ≥ 1), every base weight frozen but the last
    `unfreeze_layers` blocks. Returns the peft wrapper (its `.base_model.model` is `model`)."""
    from peft import LoraConfig, get_peft_model

    if settings.rank < 1:
        raise AdaptError(f"rank={settings.rank}: must be 1 or more")
    targets = tuple(settings.target_modules) or default_targets(model)
    check_targets(model, targets)
    modules = list(targets)
    if settings.pooled_blocks and not settings.target_modules:
        modules = reachable_targets(model, targets, settings.pooled_blocks)
    unfrozen = unfreeze_names(model, settings.unfreeze_layers, settings.pooled_blocks)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=modules, bias="none")
    with warnings.catch_warnings():
        # peft asks transformers 5 for `is_gradient_checkpointing`, which warns that the name is
        # deprecated on every run: peft's business, not the user's
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config)
    for name, param in model.named_parameters():
        if _base_name(name) in unfrozen and "lora_" not in name:
            param.requires_grad_(True)
    if settings.gradient_checkpointing:
        enable_checkpointing(model)
    return peft_model


def reachable_targets(model: nn.Module, targets: tuple[str, ...], pooled_blocks: int) -> list[str]:
    """Full names of the target layers inside the first `pooled_blocks` blocks: with layer=6 of
    12 (seed 000's middle layers), adapters on blocks 7-12 would get no gradient, and the
    gradient check would stop the run."""
    found = list(blocks(model))
    if pooled_blocks >= len(found):
        return list(targets)
    kept = {id(m) for block in found[:pooled_blocks] for m in block.modules()}
    names = [name for name, module in model.named_modules()
             if id(module) in kept and isinstance(module, TRAINABLE_LAYERS)
             and any(name == t or name.endswith("." + t) for t in targets)]
    if not names:
        raise AdaptError(f"layer={pooled_blocks}: the first {pooled_blocks} blocks of {type(model).__name__} hold no "
                         f"{', '.join(targets)}")
    return names


def unfreeze_names(model: nn.Module, count: int, pooled_blocks: int = 0) -> set[str]:
    """Base-model parameter names of the last `count` blocks the pooled layer passes through
    (before any adapter is injected)."""
    if count < 0:
        raise AdaptError(f"unfreeze_layers={count}: must be 0 or more")
    if count == 0:
        return set()
    found = list(blocks(model))
    if pooled_blocks:
        found = found[:pooled_blocks]
    if count > len(found):
        raise AdaptError(f"unfreeze_layers={count}: {type(model).__name__} has {len(found)} transformer blocks"
                         + (f" up to layer={pooled_blocks}" if pooled_blocks else ""))
    chosen = {id(p) for block in list(found)[-count:] for p in block.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in chosen}


def _base_name(name: str) -> str:
    """A parameter's base-model name: peft's wrapper prefixes and `.base_layer` taken out."""
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace(".base_layer.", ".")


def enable_checkpointing(model: nn.Module) -> None:
    """Activation checkpointing that works with adapters on audio models: the non-reentrant variant
    needs no input that requires grad (the reentrant one, behind `enable_input_require_grads`, wants
    token embeddings, which audio encoders do not have), so adapter grads flow through frozen blocks."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise AdaptError(f"gradient_checkpointing=true: {type(model).__name__} does not support it")
    if hasattr(model, "activation_checkpointing_enable"):  # the 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def adapter_names(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad and "lora_" in name]


def check_gradients(model: nn.Module, nonzero: bool) -> None:
    """After a backward: every trainable weight got a gradient (`nonzero`: one that is not all zero).
    A silent `grad=None` (an adapter the forward never reached, a checkpointed block cut off from
    autograd) trains nothing while the loss still moves through the head. The first backward is
    checked for None only: LoRA's B starts at zero, so A's first gradient is exactly zero; from the
    second on (after one optimiser step) every gradient must be non-zero."""
    weights = trainable(model)
    dead = [name for name, p in weights.items()
            if p.grad is None or (nonzero and not bool(torch.any(p.grad != 0)))]
    if dead:
        kind = "None" if weights[dead[0]].grad is None else "zero"
        raise AdaptError(f"{len(dead)} trainable weights got no gradient (e.g. {dead[0]}: grad={kind}): the "
                         "forward does not reach them; check target_modules, layer= and unfreeze_layers=")


def unfrozen_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The fully trained (not adapter) weights, under base-model key names."""
    return {_base_name(name): p.detach().cpu().contiguous() for name, p in model.named_parameters()
            if p.requires_grad and "lora_" not in name}


def save(peft_model: nn.Module, folder: Path) -> None:
    """adapter/ and, when blocks were unfrozen, unfrozen.safetensors into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    peft_model.save_pretrained(folder / ADAPTER_DIR)
    state = unfrozen_state(peft_model)
    if state:
        save_file(state, folder / UNFROZEN_FILE)


def restore(model: nn.Module, folder: Path) -> nn.Module:
    """The base `model` with the run's unfrozen weights and adapters loaded (adapters injected in place)."""
    from peft import PeftModel
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / UNFROZEN_FILE).exists():
        state = load_file(folder / UNFROZEN_FILE)
        missing = sorted(set(state) - set(dict(model.named_parameters())))
        if missing:
            raise AdaptError(f"{folder / UNFROZEN_FILE}: {missing[0]} is not a weight of {type(model).__name__}")
        model.load_state_dict(state, strict=False)
    return PeftModel.from_pretrained(model, folder / ADAPTER_DIR, is_trainable=False)


def digest_files(files: dict[str, bytes]) -> str:
    """sha256 over {path relative to the run folder: bytes} of adapter/ and unfrozen.safetensors, in path order."""
    sha = hashlib.sha256()
    for name in sorted(files):
        if name.startswith(ADAPTER_DIR + "/") or name == UNFROZEN_FILE:
            sha.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return sha.hexdigest()


def digest(folder: Path) -> str:
    """lora.json's `adapter_sha256` of a run folder (or any folder holding the same layout)."""
    folder = Path(folder)
    paths = [p for p in (folder / ADAPTER_DIR).rglob("*") if p.is_file()]
    paths += [folder / UNFROZEN_FILE] if (folder / UNFROZEN_FILE).exists() else []
    return digest_files({p.relative_to(folder).as_posix(): p.read_bytes() for p in paths})
