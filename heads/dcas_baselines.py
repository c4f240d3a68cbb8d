"""Baselines DCAS is compared against in the same run: each is a `score(user_rows) → [users, tracks]`
function over one users × tracks train matrix (rows: users, columns: track rows of the data).

- popularity: the track's train interaction count (the same list for everyone);
- content cosine: cosine between the raw backbone vector of a track and the user's weighted mean
  of (unit) history vectors — needs no interactions of the track, so it can rank cold tracks;
- item-kNN: Σ over the user's history of item–item cosine on train interaction columns;
- BPR-MF: `implicit`'s BayesianPersonalizedRanking (a maintained CPU library; no torch, no CUDA);
- LightFM-like hybrid MF: an item's embedding is its id embedding plus a linear projection of its
  (standardised) backbone vector, trained with BPR in torch, so a track never played in train still
  gets a content-made embedding. LightFM itself is not used: its last release (1.17, 2023) ships
  only an sdist whose setup.py fails on current setuptools (`'dict' object has no attribute
  '__LIGHTFM_SETUP__'`, `pip download --no-deps lightfm` on Python 3.11), and it is unmaintained.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

Scorer = Callable[[np.ndarray], np.ndarray]


def popularity(train: sparse.csr_matrix) -> Scorer:
    counts = np.asarray((train > 0).sum(0)).ravel().astype(np.float32)
    return lambda rows: np.broadcast_to(counts, (len(rows), len(counts)))


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def content_cosine(train: sparse.csr_matrix, X: np.ndarray) -> Scorer:
    unit = _unit(X.astype(np.float32))

    def score(rows: np.ndarray) -> np.ndarray:
        profiles = _unit(np.asarray(train[rows] @ unit))
        return profiles @ unit.T
    return score


def item_knn(train: sparse.csr_matrix) -> Scorer:
    binary = (train > 0).astype(np.float32)
    norms = np.sqrt(np.asarray(binary.multiply(binary).sum(0)).ravel())
    columns = binary @ sparse.diags(1.0 / np.maximum(norms, 1e-12))   # unit item columns

    def score(rows: np.ndarray) -> np.ndarray:
        # history · (Cᵀ C) without the tracks × tracks matrix: (history · Cᵀ) · C
        return np.asarray(((binary[rows] @ columns.T) @ columns).todense())
    return score


def bpr_mf(train: sparse.csr_matrix, factors: int = 32, iterations: int = 100, seed: int = 0) -> Scorer:
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    model = BayesianPersonalizedRanking(factors=factors, iterations=iterations, random_state=seed, num_threads=1)
    with threadpool_limits(1):
        model.fit((train > 0).astype(np.float32).tocsr(), show_progress=False)
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return lambda rows: users[rows] @ items.T


def hybrid_mf(train: sparse.csr_matrix, X: np.ndarray, factors: int = 32, epochs: int = 100, seed: int = 0,
              lr: float = 0.05, l2: float = 1e-4, batch: int = 4096) -> Scorer:
    """LightFM-like BPR: user u · (item id embedding + P·x_i) + item bias (id bias + w·x_i); one
    uniform negative per positive among the tracks played in train. The id part of a track without
    train plays stays near its small initial value, so its score is its content's."""
    import torch

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    user, item = (train > 0).nonzero()
    n_users, n_items = train.shape
    # negatives come from tracks played in train: a never-played track drawn as a negative would have
    # its id embedding pushed away from everyone, undoing what its content says (the cold-start case)
    played = np.unique(item)
    content = torch.from_numpy(((X - X.mean(0)) / np.where(X.std(0) > 1e-6, X.std(0), 1.0)).astype(np.float32))
    users = torch.nn.Parameter(0.1 * torch.randn(n_users, factors, generator=gen))
    ids = torch.nn.Parameter(0.01 * torch.randn(n_items, factors, generator=gen))
    id_bias = torch.nn.Parameter(torch.zeros(n_items))
    project = torch.nn.Parameter(torch.randn(X.shape[1], factors, generator=gen) / np.sqrt(X.shape[1]))
    project_bias = torch.nn.Parameter(torch.zeros(X.shape[1]))
    params = [users, ids, id_bias, project, project_bias]
    optimiser = torch.optim.Adam(params, lr=lr)

    def items(rows: torch.Tensor) -> torch.Tensor:
        return ids[rows] + content[rows] @ project

    def bias(rows: torch.Tensor) -> torch.Tensor:  # as LightFM: the sum of its features' biases
        return id_bias[rows] + content[rows] @ project_bias

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small steps; the machine's other cores are someone else's
    try:
        for _ in range(epochs if len(user) else 0):
            order = rng.permutation(len(user))
            for start in range(0, len(order), batch):
                pick = order[start:start + batch]
                u = torch.from_numpy(user[pick])
                pos = torch.from_numpy(item[pick])
                neg = torch.from_numpy(played[rng.integers(0, len(played), len(pick))])
                vu, vp, vn = users[u], items(pos), items(neg)
                margin = (vu * (vp - vn)).sum(1) + bias(pos) - bias(neg)
                loss = torch.nn.functional.softplus(-margin).mean() + l2 * (
                    vu.pow(2).sum(1) + ids[pos].pow(2).sum(1) + ids[neg].pow(2).sum(1)).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            item_vectors = items(torch.arange(n_items)).numpy()
            user_vectors, item_bias = users.numpy().copy(), bias(torch.arange(n_items)).numpy()
    finally:
        torch.set_num_threads(before)
    return lambda rows: user_vectors[rows] @ item_vectors.T + item_bias
