"""Vectors for audio files outside the lake, made exactly as the lake made a backbone's vectors.

    from embed.files import embed_files
    got = embed_files([Path("take1.wav"), Path("take2.m4a")], "musicnn-mtt", layers=["penultimate"])
    got.vectors["penultimate"].shape, got.paths, got.failed     # failed: {file: one-line reason}

For heads that answer about new audio (`just score FILE`, retrieval's `search-terms FILE`).
Nothing here is a second copy of the engine: the backbone's `backbones` provenance row gives
spec, layers, max_seconds, chunking and precision; those become the engine's own
`EmbedConfig`, whose settings must equal the stored ones; the model comes from
the engine's `embed.shard.load_model` and must load the stored weights (revision); each file is decoded,
mixed down, resampled and cropped or chunked by the engine's `BatchDataset` (lake.audio
decode, embed.loader prepare) and pooled by the engine's `embed_batch`, under the same
autocast. On CPU (one clip per forward, the engine's default there) a file's vector is the
lake's vector of the same bytes, bit for bit; batched GPU forwards agree to float tolerance.

A file that is missing or cannot be decoded is reported in `failed` and skipped; the others
still get vectors.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embed import shard, store
from embed.backbone import Backbone
from embed.engine import EmbedConfig
from embed.loader import BatchDataset, Clip
from embed.shard import embed_batch


class FilesError(ValueError):
    """The backbone cannot be rebuilt as the lake used it; the message is one line."""


@dataclass
class Embedded:
    paths: list[Path]                         # the files that got vectors, in the order given
    vectors: dict[str, np.ndarray]            # layer → float32 [len(paths), dim]
    failed: dict[Path, str] = field(default_factory=dict)  # file → why it has no vector


def backbone_config(name: str, device: str = "auto") -> EmbedConfig:
    """The engine config that made the stored vectors of backbone `name`, from its provenance."""
    row = store.read_backbone(name)
    if row is None:
        raise FilesError(f"backbone {name!r} has no provenance row: no dataset was embedded with it "
                         f"(just embed dataset=... backbone=...)")
    stored = json.loads(row["settings"])
    cfg = EmbedConfig(dataset="files", backbone=row["spec"], name=name,
                      layers="" if stored.get("layers", "default") == "default" else stored["layers"],
                      max_seconds=row["max_seconds"], chunking=row["chunking"], precision=row["precision"],
                      revision=stored.get("revision", ""), device=device, loader_workers=0)
    if cfg.settings() != stored:
        diff = ", ".join(f"{k}={stored.get(k)} (now {v})" for k, v in cfg.settings().items() if stored.get(k) != v)
        raise FilesError(f"backbone {name!r}: cannot rebuild its settings ({diff})")
    return cfg


def load_model(name: str, device: str = "auto") -> tuple[Backbone, EmbedConfig]:
    cfg = backbone_config(name, device)
    try:
        model = shard.load_model(cfg.shard_settings())
    except shard.EmbedRefused as err:  # e.g. the weights are not on this machine
        raise FilesError(str(err)) from None
    revision, stored = model.provenance().revision, store.read_backbone(name)["revision"]
    if revision != stored:
        raise FilesError(f"backbone {name!r}: the lake's vectors come from weights {stored}, but {cfg.backbone} now "
                         f"loads {revision}; their vectors would not be comparable")
    return model, cfg


def embed_files(files: list[Path], backbone: str, layers: list[str] | None = None, device: str = "auto",
                loaded: tuple[Backbone, EmbedConfig] | None = None) -> Embedded:
    """Vectors of `layers` (default: every layer the backbone stores) for each readable file."""
    model, cfg = loaded or load_model(backbone, device)
    wanted = list(layers or model.layers)
    unknown = [layer for layer in wanted if layer not in model.layers]
    if unknown:
        raise FilesError(f"backbone {backbone!r} has no layer {unknown[0]!r} (layers: {', '.join(model.layers)})")
    failed: dict[Path, str] = {}
    clips: list[tuple[Path, Clip]] = []
    for index, path in enumerate(map(Path, files)):
        if not path.exists():
            failed[path] = "no such file"
        elif not path.is_file():
            failed[path] = "not a file"
        else:  # the engine reads clips by byte range from a shard: here the whole file is the range
            clips.append((path, Clip(str(index), "", str(path.resolve()), 0, path.stat().st_size, 0.0)))
    dataset = BatchDataset(Path("/"), [[clip] for _, clip in clips], model.sample_rate, cfg.max_seconds, cfg.chunking)
    size = shard.resolve_here(cfg.shard_settings()).batch_size  # the engine's batch size on this device
    autocast = (torch.autocast(device_type=cfg.device.split(":")[0], dtype=torch.bfloat16)
                if cfg.precision == "bf16" else nullcontext())
    done: list[Path] = []
    rows: dict[str, list[np.ndarray]] = {layer: [] for layer in wanted}
    with autocast:
        for (path, clip), batch in zip(clips, (dataset[i] for i in range(len(dataset)))):
            vectors, failures, unread, _ = embed_batch(model, batch, size)
            if failures or unread:
                failed[path] = (failures or unread)[0]["reason"]
                continue
            done.append(path)
            for layer in wanted:
                rows[layer].append(vectors[clip.track_id][layer])
    return Embedded(done, {layer: np.stack(v).astype(np.float32) if v else np.empty((0, model.dim), np.float32)
                           for layer, v in rows.items()}, failed)
