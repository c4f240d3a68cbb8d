"""Full-ranking metrics of a recommender on held-out (user, track) pairs, per user, so they can
be averaged, sliced (user culture, item culture), bootstrapped over users and compared paired.

Every candidate track is ranked (no sampled negatives); the user's own train tracks are taken
out of the ranking. A held-out track's rank counts the candidates scored strictly higher plus
those tied with it (pessimistic: a constant scorer ranks nothing well). Scores come in blocks of
users, so no users × tracks float64 matrix is ever held.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

KS = (10, 20, 50)


@dataclass
class Ranked:
    """Per evaluated user (rows of `users`): each metric, plus each user's top-max(k) list."""
    users: np.ndarray                 # user rows evaluated (those with held-out pairs)
    per_user: dict[str, np.ndarray]   # "recall@10" → [len(users)]
    top: np.ndarray                   # [len(users), max(ks)] track rows, best first
    test_ranks: np.ndarray            # rank (0 = best) of each held-out pair, aligned with test_pairs
    test_pairs: np.ndarray            # [pairs, 2] (user position in `users`, track row)


def ideal_dcg(n_relevant: np.ndarray, k: int) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    return np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]


def rank_users(score: Callable[[np.ndarray], np.ndarray], train: sparse.csr_matrix, test: sparse.csr_matrix,
               ks: tuple[int, ...] = KS, block: int = 256) -> Ranked:
    """`score(user_rows)` → [len(user_rows), tracks] scores (higher is better) for a block of users;
    train/test: users × tracks indicator matrices."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    kmax = min(max(ks), train.shape[1])
    per_user = {f"{name}@{k}": np.zeros(len(users)) for k in ks for name in ("recall", "ndcg", "hit")}
    per_user["mrr"] = np.zeros(len(users))
    top = np.zeros((len(users), kmax), dtype=np.int64)
    all_ranks, all_pairs = [], []
    for start in range(0, len(users), block):
        rows = users[start:start + block]
        scores = np.asarray(score(rows), dtype=np.float32).copy()
        seen = train[rows]
        scores[seen.nonzero()] = -np.inf
        held = test[rows].tocoo()
        held_scores = scores[held.row, held.col]
        ranks = np.zeros(len(held.row), dtype=np.int64)
        for r in np.unique(held.row):  # per user in the block: one vector comparison per held-out pair
            mine = held.row == r
            ranks[mine] = (scores[r][None, :] >= held_scores[mine][:, None]).sum(1) - 1
        part = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        top[start:start + len(rows)] = np.take_along_axis(part, order, 1)
        n_rel = np.bincount(held.row, minlength=len(rows))
        index = start + np.arange(len(rows))
        for k in ks:
            inside = ranks < k
            hits = np.bincount(held.row, weights=inside, minlength=len(rows))
            dcg = np.bincount(held.row, weights=inside / np.log2(ranks + 2.0), minlength=len(rows))
            per_user[f"recall@{k}"][index] = hits / n_rel
            per_user[f"hit@{k}"][index] = hits > 0
            per_user[f"ndcg@{k}"][index] = dcg / ideal_dcg(n_rel, k)
        best = np.full(len(rows), np.iinfo(np.int64).max)
        np.minimum.at(best, held.row, ranks)
        per_user["mrr"][index] = 1.0 / (best + 1.0)
        all_ranks.append(ranks)
        all_pairs.append(np.stack([start + held.row, held.col], 1))
    return Ranked(users, per_user, top, np.concatenate(all_ranks), np.concatenate(all_pairs))


def item_slice(ranked: Ranked, item_group: np.ndarray, k: int) -> dict[str, float]:
    """Recall@k of held-out pairs grouped by the held-out item's group (e.g. its culture)."""
    groups = item_group[ranked.test_pairs[:, 1]]
    return {str(g): float(np.mean(ranked.test_ranks[groups == g] < k)) for g in np.unique(groups)}


def coverage(ranked: Ranked, n_tracks: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    return len(np.unique(ranked.top[:, :k])) / n_tracks


def bootstrap_ci(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean over users, resampling users."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(reps, len(values)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_test(a: np.ndarray, b: np.ndarray, reps: int = 2000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of mean(a − b) over the same users."""
    diff = a - b
    if not len(diff) or not np.any(diff):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(reps, len(diff)))
    null = np.abs((signs * diff).mean(1))
    return float((1 + np.sum(null >= abs(diff.mean()) - 1e-12)) / (reps + 1))


def kl(p: np.ndarray, q: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """KL(p ‖ q) along the last axis, with q floored so an absent culture gives a large, finite value."""
    p = np.clip(p, 0, None)
    q = np.clip(q, floor, None)
    q = q / q.sum(-1, keepdims=True)
    return np.where(p > 0, p * np.log(np.maximum(p, 1e-300) / q), 0.0).sum(-1)
