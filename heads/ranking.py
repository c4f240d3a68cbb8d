"""Learning to rank, in torch: the list losses, gradient reversal, and lists drawn from groups.

    lists = sublists(group_codes, key, max_list=32, rng=rng)   # an epoch's lists, best → worst
    for rows in batches(lists, 32, rng): index, mask = pad(rows) ...
    loss = listmle(scores, mask).sum() / mask.sum()

A list is the row indices of one group's clips ordered best → worst (by score, or by rank),
ties broken at random anew every epoch. A group longer than `max_list` is dealt at random
into ceil(n / max_list) sub-lists of near-equal length, so a group of 2,000 clips (or
`group=none`: every clip one group) never becomes one giant list; every clip is still in
exactly one list per epoch. Lists are padded to a batch with -1; the losses take a mask and
padding changes nothing (tests/test_heads_scorer.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def listmle(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-list negative Plackett–Luce log-likelihood of the order given (position 0 is the best):
    Σ_i [log Σ_{j≥i} exp s_j − s_i] over the unmasked positions. [B, L], [B, L] bool → [B].

    Padding must sit after a list's last item; it is filled with a very negative finite number
    (exp → 0, and no inf − inf whose NaN gradient would leak through the mask)."""
    floor = torch.finfo(scores.dtype).min / 4
    filled = scores.masked_fill(~mask, floor)
    suffix = torch.logcumsumexp(filled.flip(1), dim=1).flip(1)   # log Σ_{j≥i} exp s_j
    return torch.where(mask, suffix - filled, torch.zeros_like(filled)).sum(dim=1)


def ranknet(scores: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Mean pairwise logistic loss softplus(margin − (s_i − s_j)) over pairs of one list with
    truth_i > truth_j (ties make no pair). [B, L] each → scalar."""
    better = (truth[:, :, None] > truth[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    if not better.any():
        return scores.sum() * 0.0
    diff = scores[:, :, None] - scores[:, None, :]
    return F.softplus(margin - diff[better]).mean()


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient flowing back is multiplied by −scale (Ganin & Lempitsky).

    The adversary's loss is then ADDED to the task loss: the adversary's own weights descend it
    (it learns to recognise the speaker) while everything below the reversal ascends it (the
    features unlearn the speaker). Reversing the gradient and also subtracting the loss, as seed
    001's training script does, reverses twice: the features learn the speaker again."""
    return _Reverse.apply(x, scale)


def ganin_lambda(progress: float) -> float:
    """λ = 2 / (1 + exp(−10 p)) − 1: 0 at the start of training, → 1 at the end (p in [0, 1])."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def sublists(groups: np.ndarray, key: np.ndarray, max_list: int, rng: np.random.Generator) -> np.ndarray:
    """One epoch's lists as a padded int64 matrix [lists, longest] of row indices, best → worst
    by `key` (higher is better), -1 after each list's end. No per-row Python."""
    n = len(key)
    if n == 0:
        return np.empty((0, 0), np.int64)
    shuffle = rng.random(n)
    order = np.lexsort((shuffle, groups))                     # by group, random within
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    sizes = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, sizes)
    pieces = np.repeat(-(-sizes // max_list), sizes)          # ceil(size / max_list) sub-lists per group
    piece = position % pieces                                 # dealt round-robin: near-equal lengths
    first_list = np.repeat(np.r_[0, np.cumsum(-(-sizes // max_list))[:-1]], sizes)
    list_of = np.empty(n, np.int64)
    list_of[order] = first_list + piece
    ties = rng.random(n)
    ranked = np.lexsort((ties, -key, list_of))               # each list best → worst, ties at random
    lists = list_of[ranked]
    list_starts = np.r_[0, np.flatnonzero(lists[1:] != lists[:-1]) + 1]
    lengths = np.diff(np.r_[list_starts, n])
    out = np.full((len(lengths), int(lengths.max())), -1, np.int64)
    out[lists, np.arange(n) - np.repeat(list_starts, lengths)] = ranked
    return out


def batches(lists: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The lists in a random order, `size` per batch, each batch trimmed to its longest list."""
    shuffled = lists[rng.permutation(len(lists))]
    out = []
    for start in range(0, len(shuffled), size):
        block = shuffled[start:start + size]
        longest = int((block >= 0).sum(axis=1).max())
        out.append(block[:, :longest])
    return out
