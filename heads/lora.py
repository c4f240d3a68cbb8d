"""The lora head: fine-tune an `hf:` or `muq` backbone (peft LoRA, or its last blocks unfrozen) with a
probe or scorer head on the pooled hidden states of one layer, streaming the selection's raw audio.

    just train head=lora dataset=demo backbone=hf:/models/mert target=label task=probe
    just train head=lora dataset=demo backbone=muq layer=6 target=score task=scorer rank=128 alpha=48
    torchrun --nproc_per_node=2 -m heads head=lora dataset=demo backbone=hf:/models/mert target=label

The selection is the heads contract's (split=, where=, select=), read by `heads.data.load_audio`:
the rows' byte ranges in the shards, from the `tracks` manifest. Clips are read and decoded by the
embed engine's own reader (`embed.loader`), resampled to the backbone's rate and cut to the
embedding settings of the stored name (`max_seconds`, `chunking`), so val/test see exactly what
the frozen vectors saw: train clips get a random `max_seconds` crop each epoch instead (seeded by
seed, epoch and clip, so a resumed run draws the same crops). The forward and pooling are the
embedding backbone's own (`HFBackbone.pool`, `MuQBackbone.pool`): the frozen probe on stored vectors of the same layer
and this run differ only in the adapted weights, which is what `just compare` lines up.

Training: AdamW with `lr` for the backbone's trainable weights and `head_lr` for the head,
`grad_accum` batches per step, bf16 autocast where the device has it. After the first backward
every trainable weight must have a gradient, after the second a non-zero one (embed.adapters).
A checkpoint (trainable weights, head, optimiser, step, position in the epoch, RNG states, the best
state on val so far) is written every `checkpoint_every` steps and after each epoch into a working
folder keyed by the config and the data fingerprint: the same command after a kill resumes from it
(`resume=no` starts over). The run keeps the weights best on val. Under torchrun each rank trains on
its own disjoint share of each epoch's shuffled clips (DDP: gloo on CPU, nccl on CUDA) and only
rank 0 writes checkpoints and the run.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from embed import adapters
from heads import metrics, probe, ranking_metrics
from heads.data import Data, Selection, SelectionError, load_audio
from heads.lora_stream import ClipSet, Distributed, as_is, batches, epoch_share
from heads.protocol import Description, Inputs, Metric, Trained
from lake import atomic, locks, paths

MAX_SECONDS = 30.0   # when the stored name was never embedded: the embed engine's default

# A test hook: called with the optimiser step just taken (a test raises from it to simulate a kill).
after_step: Callable[[int], None] | None = None


@dataclass
class Config(Selection):
    task: Literal["probe", "scorer"] = "probe"   # probe: classify target; scorer: regress the score target
    name: str = ""                   # the stored backbone name this adapts (frozen twin); default from backbone=
    base: str = ""                   # the backbone spec (hf:... or muq[:dir]), taken from backbone=
    revision: str = ""               # hub revision of the base model
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05            # on the adapters' input
    target_modules: str = ""         # comma-separated; empty: q/k/v/out projections of the architecture
    unfreeze_layers: int = 0         # also train the last N transformer blocks in full
    lr: float = 1e-4                 # adapters and unfrozen blocks
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 3
    batch_size: int = 8
    grad_accum: int = 1              # batches per optimiser step
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"   # auto: bf16 autocast on CUDA that has it
    device: str = "auto"
    workers: int = 2                 # DataLoader processes decoding clips while the model trains
    max_seconds: float = 0.0         # 0: the stored name's embedding settings (else 30 s)
    group: str = "none"              # task=scorer: Spearman within groups of this column
    checkpoint_every: int = 50       # optimiser steps between checkpoints (and after every epoch)
    resume: Literal["auto", "no"] = "auto"

    def __post_init__(self) -> None:
        from embed import registry

        if not self.base:  # backbone= names the model to adapt; the runs row names its stored twin
            spec = self.backbone if isinstance(self.backbone, str) else ",".join(self.backbone)
            try:
                spec = registry.resolve(spec)
            except ValueError as err:
                raise ValueError(str(err)) from None
            kind, target = registry.split(spec)
            if registry.entry(spec).module != "embed.hf" and kind != "muq":
                raise ValueError(f"backbone={spec}: head=lora adapts transformers encoders (hf:<id or dir> or "
                                 "an alias of one) and MuQ (muq or muq:<dir>)")
            if kind in ("hf", "muq") and target and Path(target).is_dir():  # lora.json names the base for any cwd
                spec = f"{kind}:{Path(target).resolve()}"
            self.base, self.backbone = spec, (self.name or registry.default_name(spec),)
        super().__post_init__()
        self.name = self.backbone[0]
        if not self.target:
            raise ValueError("missing target=: the tracks column to predict")
        if self.seeds != 1:
            raise ValueError(f"seeds={self.seeds}: a LoRA run trains one seed (run it again with seed=)")
        if self.layer == "all":
            raise ValueError("layer=all: a LoRA run adapts for one layer; name it (layer=6) or leave it out")
        for key in ("rank", "epochs", "batch_size", "grad_accum", "checkpoint_every"):
            if not getattr(self, key) >= 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be 1 or more")
        for key in ("unfreeze_layers", "workers"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key}={getattr(self, key)}: must be 0 or more")
        for key in ("lr", "head_lr", "alpha"):
            if not (getattr(self, key) > 0 and math.isfinite(getattr(self, key))):
                raise ValueError(f"{key}={getattr(self, key)}: must be a positive finite number")
        if not (0 <= self.dropout < 1 and self.weight_decay >= 0 and self.max_seconds >= 0):
            raise ValueError("0 ≤ dropout < 1, weight_decay ≥ 0 and max_seconds ≥ 0 are required")

    @property
    def variant(self) -> str:
        return f"lora r{self.rank}" + (f" +{self.unfreeze_layers} blocks" if self.unfreeze_layers else "")

    def settings(self) -> adapters.Settings:
        targets = tuple(t.strip() for t in self.target_modules.split(",") if t.strip())
        layer = (self.layer or "last").strip()
        return adapters.Settings(self.rank, self.alpha, self.dropout, targets, self.unfreeze_layers,
                                 self.gradient_checkpointing, pooled_blocks=int(layer) if layer.isdigit() else 0)


HEADLINE = (*probe.HEADLINE,
            Metric("spearman", "Spearman ρ", short="ρ", format=".3f"),
            Metric("mae", "MAE", direction="min", format=".3f"))
COUNTS = probe.COUNTS


def inputs(cfg: Config) -> Inputs:
    columns = {"target": cfg.target, **({"group": cfg.group} if cfg.task == "scorer" and cfg.group != "none" else {})}
    return Inputs(columns=columns, required=tuple(columns))


def load_data(cfg: Config, wanted: Inputs) -> Data:
    return load_audio(cfg, cfg.layer or "last", wanted)


def describe(cfg: Config, data: Data) -> Description:
    if cfg.task == "probe":
        return probe.describe(cfg, data)
    score = _scores(cfg, data)
    return Description(line=f"scores of {cfg.target}, {score.min():g} to {score.max():g}",
                       facts={"score_range": [float(score.min()), float(score.max())]})


def _scores(cfg: Config, data: Data) -> np.ndarray:
    values = data.column(cfg.target)
    if values.dtype.kind not in "fiu":
        raise SelectionError(f"target={cfg.target} is {data.types[cfg.target]}: task=scorer needs a numeric score")
    return values.astype(np.float64)


# -- the model ------------------------------------------------------------------------------

class Net(nn.Module):
    """Backbone (adapted in place) + head: waveforms → outputs. One module, so DDP syncs both."""

    def __init__(self, backbone, head: nn.Module, layer: str, peft_model: nn.Module | None = None):
        super().__init__()
        self.encoder, self.head, self.layer = backbone.module, head, layer
        self.backbone = backbone  # not a Module: HFBackbone runs self.encoder (its .module) and pools
        # peft's wrapper saves the adapters; kept out of the module tree, its weights are the encoder's
        self.__dict__["peft"] = peft_model

    def forward(self, waves: list[np.ndarray]) -> torch.Tensor:
        return self.head(self.backbone.pool(waves)[self.layer].float())


def head_module(dim: int, outputs: int) -> nn.Module:
    # LayerNorm stands in for the frozen probe's standardisation: the pooled states' scale moves as
    # the adapters train, so statistics fixed at the start would go stale.
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, outputs))


def _device(cfg: Config) -> torch.device:
    if cfg.device not in ("", "auto"):
        return torch.device(cfg.device)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")


def _autocast(cfg: Config, device: torch.device):
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda"
                                       and torch.cuda.is_bf16_supported())
    return (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext, bf16


def _embedding_settings(cfg: Config) -> tuple[float, str]:
    """max_seconds and chunking of the stored name's vectors (the frozen twin), else the engine's defaults."""
    from embed import store

    row = store.read_backbone(cfg.name)
    stored = (row["max_seconds"], row["chunking"]) if row else (MAX_SECONDS, "crop")
    return (cfg.max_seconds or stored[0]), stored[1]


# -- checkpoints ------------------------------------------------------------------------------

RESUME_INDIFFERENT = ("resume", "workers", "checkpoint_every", "device")


def work_folder(cfg: Config, data: Data) -> Path:
    """Where an unfinished run of this config on this data keeps its checkpoint."""
    keys = {k: v for k, v in asdict(cfg).items() if k not in RESUME_INDIFFERENT}
    key = hashlib.sha256(json.dumps([keys, data.fingerprint], sort_keys=True, default=str).encode()).hexdigest()
    return paths.runs_dir() / ".work" / f"lora-{key[:16]}"


def _trainable_state(net: Net) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in net.encoder.named_parameters() if p.requires_grad}


def _load_trainable(net: Net, state: dict[str, torch.Tensor]) -> None:
    params = dict(net.encoder.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


# -- training ---------------------------------------------------------------------------------

def load_base(base: str, layer: str, device: str, revision: str):
    """The base backbone through the embedding registry's own loader (HFBackbone or MuQBackbone), in
    fp32 weights: training autocasts itself."""
    from embed import registry

    return registry.load(base, layer, device, "fp32", None, revision=revision)


def build(cfg: Config, seed: int, data: Data) -> Net:
    """The backbone loaded and adapted (adapters initialised from `seed`), with an untrained head."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # wav2vec2/HuBERT's training-time time masks draw from numpy's global generator
    device = _device(cfg)
    backbone = load_base(cfg.base, cfg.layer or "last", str(device), cfg.revision)
    if getattr(backbone, "kind", "") == "clap":
        raise SelectionError(f"backbone={cfg.base}: head=lora adapts encoder and Whisper backbones, not CLAP")
    # a dropped block's adapters would get no gradient; MuQ keeps its conformer's config on the encoder
    configs = {id(c): c for m in backbone.module.modules() if (c := getattr(m, "config", None)) is not None}
    for config in configs.values():
        for key in ("layerdrop", "encoder_layerdrop"):
            if hasattr(config, key):
                setattr(config, key, 0.0)
    try:
        peft_model = adapters.adapt(backbone.module, cfg.settings())
    except adapters.AdaptError as err:
        raise SelectionError(str(err)) from None
    outputs = len(probe.encode(cfg, data)[1]) if cfg.task == "probe" else 1
    return Net(backbone, head_module(backbone.dim, outputs), (cfg.layer or "last"), peft_model).to(device)


def train(cfg: Config, data: Data, seed: int) -> Trained:
    device = _device(cfg)
    dist = Distributed.start(device)
    net = build(cfg, seed, data)
    backbone = net.backbone
    max_seconds, chunking = _embedding_settings(cfg)
    if backbone.max_seconds is not None and max_seconds > backbone.max_seconds:
        max_seconds = backbone.max_seconds  # Whisper's 30 s window
    audio = (backbone.sample_rate, max_seconds, chunking)
    autocast, bf16 = _autocast(cfg, device)
    y, loss_fn, evaluate = _task(cfg, data)
    model = net if dist.world == 1 else nn.parallel.DistributedDataParallel(net)
    adapted = [p for p in net.encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": adapted, "lr": cfg.lr}, {"params": list(net.head.parameters()),
                                                                         "lr": cfg.head_lr}],
                                  weight_decay=cfg.weight_decay)
    folder = work_folder(cfg, data)
    lock = locks.file_lock(folder / ".lock", wait=False, holder="train head=lora") if dist.rank == 0 else nullcontext()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with lock:
            state = _start(cfg, folder, net, optimiser, dist)
            _fit(cfg, data, seed, net, model, optimiser, y, loss_fn, evaluate, state, folder, dist, autocast, audio)
    except locks.Busy as busy:
        raise SelectionError(f"another run of this LoRA config is training ({busy}): wait for it") from None
    best = state["best"]
    net.head.load_state_dict(best["head"])
    _load_trainable(net, best["trainable"])
    out: dict[str, Any] = {"layer": net.layer, "best_epoch": best["epoch"], "epochs_run": state["epoch"],
                           "steps": state["step"], "history": state["history"],
                           "resumed_from_step": state["resumed_from_step"],
                           "trainable_parameters": sum(p.numel() for p in adapted),
                           "precision": "bf16" if bf16 else "fp32", "max_seconds": max_seconds,
                           "distributed": {"world_size": dist.world, "backend": dist.backend,
                                           **state["seen"]}}
    for part in data.parts():
        if part != "train":
            out[part] = evaluate(part, net, audio)
    if dist.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)  # finished: the run folder keeps the result
    checkpoint = {"head": net.head.state_dict(), "config": asdict(cfg), "layer": net.layer,
                  "classes": probe.encode(cfg, data)[1] if cfg.task == "probe" else None}
    files = _adapter_files(net.peft)
    info = {"base": cfg.base, "revision": backbone.revision or None, "layer": net.layer,
            "sample_rate": backbone.sample_rate, "max_seconds": max_seconds, "chunking": chunking,
            "adapter_sha256": adapters.digest_files(files), "rank": cfg.rank, "alpha": cfg.alpha,
            "dropout": cfg.dropout, "target_modules": list(cfg.settings().target_modules
                                                           or adapters.default_targets(net.encoder)),
            "unfreeze_layers": cfg.unfreeze_layers, "task": cfg.task, "stored_name": cfg.name,
            "adapted_blocks": cfg.settings().pooled_blocks or "all"}
    artifacts: dict[str, Any] = {adapters.ADAPTER_DIR + "/": _folder_writer(files, adapters.ADAPTER_DIR)}
    if adapters.UNFROZEN_FILE in files:
        artifacts[adapters.UNFROZEN_FILE] = lambda path: path.write_bytes(files[adapters.UNFROZEN_FILE])
    artifacts["lora.json"] = lambda path: path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    notes = [f"LoRA rank {cfg.rank}, alpha {cfg.alpha:g} on {', '.join(info['target_modules'])}"
             + (f" of the first {info['adapted_blocks']} blocks (those layer={net.layer} passes through)"
                if info["adapted_blocks"] != "all" else "")
             + (f"; last {cfg.unfreeze_layers} blocks unfrozen" if cfg.unfreeze_layers else "")
             + f"; best on val at epoch {best['epoch']}"]
    if state["resumed_from_step"]:
        notes.append(f"resumed from a checkpoint at step {state['resumed_from_step']}")
    return Trained(net, out, checkpoint, net.layer, notes, artifacts)


def _adapter_files(peft_model: nn.Module) -> dict[str, bytes]:
    """The run's adapter layout as {relative path: bytes} (written by the run's artifact writers)."""
    with tempfile.TemporaryDirectory() as tmp:
        adapters.save(peft_model, Path(tmp))
        return {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}


def _folder_writer(files: dict[str, bytes], prefix: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for name, blob in files.items():
            if name.startswith(prefix + "/"):
                (path / name[len(prefix) + 1:]).write_bytes(blob)
    return write


def _start(cfg: Config, folder: Path, net: Net, optimiser, dist: Distributed) -> dict[str, Any]:
    """A fresh training state, or the one in the working folder's checkpoint (resume=auto)."""
    path = folder / "checkpoint.pt"
    if cfg.resume == "auto" and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        _load_trainable(net, saved["trainable"])
        net.head.load_state_dict(saved["head"])
        optimiser.load_state_dict(saved["optimiser"])
        torch.set_rng_state(saved["rng"]["torch"])
        np.random.set_state(saved["rng"]["numpy"])
        state = saved["state"]
        state["resumed_from_step"] = state["step"]
        return state
    return {"epoch": 0, "batch": 0, "step": 0, "history": [], "best": None, "resumed_from_step": 0,
            "seen": {}, "epoch_loss": [0.0, 0]}


def _save(folder: Path, net: Net, optimiser, state: dict[str, Any], dist: Distributed) -> None:
    if dist.rank == 0:
        saved = {"trainable": _trainable_state(net), "head": copy.deepcopy(net.head.state_dict()),
                 "optimiser": optimiser.state_dict(), "state": state,
                 "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}}
        with atomic.atomic_path(folder / "checkpoint.pt") as tmp:
            torch.save(saved, tmp)
    dist.barrier()


def _fit(cfg: Config, data: Data, seed: int, net: Net, model: nn.Module, optimiser, y: np.ndarray, loss_fn,
         evaluate, state: dict[str, Any], folder: Path, dist: Distributed, autocast, audio: tuple) -> None:
    rate, max_seconds, _chunking = audio
    train_rows = np.flatnonzero(data.part("train"))
    if len(train_rows) < dist.world:
        raise SelectionError(f"{len(train_rows)} train clips cannot be shared by {dist.world} processes")
    device = next(net.head.parameters()).device
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        share = epoch_share(train_rows, seed, epoch, dist.rank, dist.world)
        if epoch == 0 and state["batch"] == 0:
            seen = dist.gather(data.track_ids[share].tolist())
            state["seen"] = {"train_clips_by_rank": [len(s) for s in seen],
                             "overlap_between_ranks": len(seen[0]) * len(seen) - len(set().union(*map(set, seen)))}
        plan = batches(share, cfg.batch_size)
        clips = ClipSet(data.clips, rate, max_seconds, "crop", crop=True, seed=seed, epoch=epoch)
        loader = torch.utils.data.DataLoader(
            clips, batch_sampler=plan[state["batch"]:], collate_fn=as_is, num_workers=cfg.workers,
            prefetch_factor=2 if cfg.workers else None, generator=torch.Generator().manual_seed(seed))
        net.train()
        accumulated = 0
        for items in loader:
            problem = next((p for _, _, p in items if p), None)
            if problem:
                raise SelectionError(f"a training clip cannot be used: {problem}")
            index = [i for i, _, _ in items]
            waves = [chunks[0] for _, chunks, _ in items]
            last_of_epoch = state["batch"] + 1 == len(plan)
            sync = (accumulated + 1 == cfg.grad_accum) or last_of_epoch
            with (nullcontext() if sync or dist.world == 1 else model.no_sync()), autocast():
                out = model(waves)
                loss = loss_fn(out.float(), torch.as_tensor(y[index], device=device))
            (loss / cfg.grad_accum).backward()
            accumulated += 1
            state["batch"] += 1
            state["epoch_loss"][0] += float(loss.detach()) * len(index)
            state["epoch_loss"][1] += len(index)
            if not sync:
                continue
            if state["step"] < 2:  # the first backward: no None; the second: no zero (LoRA's B starts at 0)
                try:
                    adapters.check_gradients(net.encoder, nonzero=state["step"] == 1)
                except adapters.AdaptError as err:
                    raise SelectionError(str(err)) from None
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            accumulated = 0
            state["step"] += 1
            if state["step"] % cfg.checkpoint_every == 0 and not last_of_epoch:
                _save(folder, net, optimiser, state, dist)
            if after_step is not None:
                after_step(state["step"])
        total, count = state["epoch_loss"]
        score = evaluate("val", net, audio, with_loss=True)
        state["history"].append({"epoch": epoch + 1, "train_loss": total / max(count, 1),
                                 "val_loss": score["loss"], "val_score": score["monitor"]})
        if state["best"] is None or score["monitor"] > state["best"]["score"]:
            state["best"] = {"score": score["monitor"], "epoch": epoch + 1, "trainable": _trainable_state(net),
                             "head": copy.deepcopy(net.head.state_dict())}
        state.update(epoch=epoch + 1, batch=0, epoch_loss=[0.0, 0])
        _save(folder, net, optimiser, state, dist)


def _task(cfg: Config, data: Data):  # noqa: ANN202 - (targets, loss, evaluate(part))
    if cfg.task == "probe":
        y, classes = probe.encode(cfg, data)
        k = len(classes)
        counts = np.bincount(y[data.part("train")], minlength=k).astype(np.float32)
        weight = torch.as_tensor(len(y[data.part("train")]) / (k * np.maximum(counts, 1)))  # balanced, as the probe
        targets: np.ndarray = y
    else:
        score = _scores(cfg, data)
        train = score[data.part("train")]
        mean, scale = float(train.mean()), float(train.std() or 1.0)
        targets = ((score - mean) / scale).astype(np.float32)
    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if cfg.task == "probe":
            return nn.functional.cross_entropy(out, target, weight=weight.to(out.device))
        return nn.functional.mse_loss(out.squeeze(1), target)

    def evaluate(part: str, net: Net, audio: tuple, with_loss: bool = False) -> dict[str, Any]:
        rows = np.flatnonzero(data.part(part))
        outputs = predict(net, [data.clips[i] for i in rows], audio)
        device_out = torch.from_numpy(outputs)
        if cfg.task == "probe":
            found = metrics.classification(y[rows], torch.softmax(device_out, 1).numpy(), classes)
            loss = float(loss_fn(device_out, torch.from_numpy(y[rows])))
            found_monitor = found["macro_f1"]
        else:
            pred = outputs[:, 0] * scale + mean
            truth = score[rows]
            groups = data.column(cfg.group)[rows].astype(str) if cfg.group != "none" else np.zeros(len(rows), str)
            rho, used = ranking_metrics.group_spearman(pred, truth, groups)
            found = {"n": len(rows), "spearman": None if math.isnan(rho) else rho, "groups": used,
                     "mae": float(np.abs(pred - truth).mean())}
            loss = float(loss_fn(device_out, torch.from_numpy(targets[rows])))
            found_monitor = -loss if found["spearman"] is None else found["spearman"]
        if with_loss:
            return {"loss": loss, "monitor": found_monitor}
        return found

    return targets, loss_fn, evaluate


def predict(net: Net, clips: list, audio: tuple, batch_size: int = 8) -> np.ndarray:
    """Head outputs [n, k] for clips cut as the embedding engine cuts them (a clip's chunks averaged)."""
    rate, max_seconds, chunking = audio
    reader = ClipSet(clips, rate, max_seconds, chunking, crop=False, seed=0, epoch=0)
    was_training = net.training
    net.eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(clips), batch_size):
            items = [reader[i] for i in range(start, min(start + batch_size, len(clips)))]
            problem = next((p for _, _, p in items if p), None)
            if problem:
                raise SelectionError(f"an evaluation clip cannot be used: {problem}")
            chunks = [c for _, cs, _ in items for c in cs]
            owner = torch.tensor([n for n, (_, cs, _) in enumerate(items) for _ in cs])
            pooled = net.backbone.pool(chunks)[net.layer].float().cpu()
            sums = torch.zeros(len(items), pooled.shape[1]).index_add_(0, owner, pooled)
            vectors = sums / torch.bincount(owner, minlength=len(items)).unsqueeze(1).float()
            rows.append(net.head(vectors.to(next(net.head.parameters()).device)).float().cpu().numpy())
    net.train(was_training)
    return np.concatenate(rows)


def load_run(folder: Path, device: str = "cpu") -> tuple[Net, tuple[int, float, str]]:
    """A finished run's model (base + unfrozen blocks + adapters + head), in eval mode, and its audio
    settings (sample rate, max_seconds, chunking) for `predict`."""
    folder = Path(folder)
    info = json.loads((folder / "lora.json").read_text())
    saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)
    backbone = load_base(info["base"], info["layer"], device, saved["config"]["revision"])
    adapters.restore(backbone.module, folder)
    head = head_module(backbone.dim, saved["head"]["1.weight"].shape[0])
    head.load_state_dict(saved["head"])
    net = Net(backbone, head, info["layer"]).to(device).eval()
    return net, (info["sample_rate"], info["max_seconds"], info["chunking"])


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    if "classes" in result.get("data", {}):
        return probe.plots(result, data, folder)
    return []
