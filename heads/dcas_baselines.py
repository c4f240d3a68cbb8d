"""Baselines DCAS is compared against in the same run: each is a `score(user_rows) → [users, tracks]`
function over one users × tracks train matrix (rows: users, columns: track rows of the data).

- popularity: the track's train interaction count (the same list for everyone);
- content cosine: cosine between the raw backbone vector of a track and the user's weighted mean
  of (unit) history vectors — needs no interactions of the track, so it can rank cold tracks;
- item-kNN: Σ over the user's history of item–item cosine on train interaction columns;
- BPR-MF: `implicit`'s BayesianPersonalizedRanking (a maintained CPU library; no torch, no CUDA).
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
