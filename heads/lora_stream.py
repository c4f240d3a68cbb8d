"""What each LoRA training process reads: the selection's clips decoded by the embed engine's reader,
randomly cropped for training or cut as the embedding was, and its own share of every epoch."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lake import paths


class ClipSet(torch.utils.data.Dataset):
    """Item i: (i, chunks) of clip i, read and decoded by the embed engine's reader. `crop`: one
    random window of `max_seconds` from the whole clip (training), else the embedding's own cut."""

    def __init__(self, clips: list, rate: int, max_seconds: float, chunking: str, crop: bool, seed: int, epoch: int):
        from embed.loader import BatchDataset

        # chunking=mean decodes the whole clip (in max_seconds pieces), which a random crop needs
        self.reader = BatchDataset(paths.root(), [], rate, max_seconds, "mean" if crop else chunking)
        self.clips, self.rate, self.max_seconds = clips, rate, max_seconds
        self.crop, self.seed, self.epoch = crop, seed, epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, list[np.ndarray], str | None]:
        clip = self.clips[index]
        decoded = self.reader.one(clip)
        problem = decoded.error or decoded.unread
        if problem or not self.crop:
            return index, decoded.chunks, problem and f"{clip.track_id} ({clip.shard}): {problem}"
        whole = np.concatenate(decoded.chunks)
        window = int(round(self.max_seconds * self.rate))
        if len(whole) > window:
            start = int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, len(whole) - window + 1))
            whole = whole[start:start + window]
        return index, [whole], None


def as_is(items: list) -> list:
    """collate_fn: a batch is the list of its items."""
    return items


def batches(indices: np.ndarray, size: int) -> list[list[int]]:
    return [indices[i:i + size].tolist() for i in range(0, len(indices), size)]


def epoch_share(train_rows: np.ndarray, seed: int, epoch: int, rank: int, world: int) -> np.ndarray:
    """This rank's clips of the epoch: one shuffle all ranks agree on, dealt round-robin, cut to equal
    shares (DDP steps in lockstep); the few left over change from epoch to epoch."""
    order = np.random.default_rng([seed, epoch]).permutation(train_rows)
    usable = len(order) // world * world
    return order[rank:usable:world]


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    backend: str = ""

    @classmethod
    def start(cls, device: torch.device) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), backend)

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def gather(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, value)
        return out
