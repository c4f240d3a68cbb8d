"""The retrieval head's losses, hard negatives and rejection threshold: plain functions, tested alone.

Multi-positive InfoNCE (`multi_positive_nce`): logits [rows, columns], `positive` a bool mask of
the same shape. Each positive (i, j) is scored against row i's NEGATIVES only:

    loss(i, j) = −log( exp(l_ij) / (exp(l_ij) + Σ_{k ∉ P_i} exp(l_ik)) )

averaged over the positives of a row, then over the rows that have one. So a chunk with two
terms never treats one of them as a negative of the other, and a term that appears twice in a
batch is one column (the caller deduplicates columns: the "in-batch duplicates" are masked by
construction). Rows without a positive (no-term chunks in the audio→term direction) add
nothing there; in the term→audio direction they are negatives of every term.
"""
from __future__ import annotations

import numpy as np
import torch


def multi_positive_nce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mean over rows with ≥ 1 positive of the mean over their positives (see the module docstring)."""
    has = positive.any(dim=1)
    if not bool(has.any()):
        return logits.sum() * 0.0
    logits, positive = logits[has], positive[has]
    negatives = logits.masked_fill(positive, float("-inf"))
    neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)                  # −inf when no negative
    per = -(logits - torch.logaddexp(logits, neg_lse.expand_as(logits)))       # per (row, column)
    per = per.masked_fill(~positive, 0.0)
    return (per.sum(1) / positive.sum(1)).mean()


def both_directions(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Audio→text (rows) and text→audio (columns), averaged."""
    return 0.5 * (multi_positive_nce(logits, positive) + multi_positive_nce(logits.T, positive.T))


def neighbours(term_vectors: np.ndarray, k: int) -> np.ndarray:
    """int64 [terms, k]: each main term's k nearest other main terms by cosine in text space."""
    n = len(term_vectors)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.int64)
    unit = term_vectors / np.maximum(np.linalg.norm(term_vectors, axis=1, keepdims=True), 1e-12)
    out = np.empty((n, k), np.int64)
    for start in range(0, n, 4096):  # a block of rows at a time: a million terms never makes n × n
        sims = unit[start:start + 4096] @ unit.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
        out[start:start + 4096] = np.take_along_axis(top, order, 1)
    return out


def hard_negatives(batch_terms: np.ndarray, near: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Main-term ids to add as negative columns: the glossary neighbours of the batch's positive
    terms, each kept with probability `ratio`, never one of the batch's positives. Columns are
    MAIN terms (aliases are folded into them at ingest), so no alias of a positive can appear."""
    if near.shape[1] == 0 or len(batch_terms) == 0 or ratio <= 0:
        return np.zeros(0, np.int64)
    pool = np.unique(near[batch_terms].ravel())
    pool = pool[~np.isin(pool, batch_terms)]
    return pool[rng.random(len(pool)) < ratio] if ratio < 1 else pool


def rejection_threshold(no_term_scores: np.ndarray, max_false_accept: float) -> float:
    """A threshold t with share(no-term scores ≥ t) ≤ max_false_accept (a chunk is accepted when
    its best term similarity is ≥ t): halfway between the highest score that must be rejected
    and the next higher one (a margin, so recomputing the similarities with another batch size,
    which moves them by float32 rounding, keeps the val rate). No no-term chunk: −inf (accept all)."""
    scores = np.sort(np.asarray(no_term_scores, np.float64))[::-1]
    if len(scores) == 0:
        return float("-inf")
    allowed = int(np.floor(max_false_accept * len(scores) + 1e-9))
    if allowed >= len(scores):
        return float("-inf")
    rejected = scores[allowed]
    higher = scores[:allowed][scores[:allowed] > rejected]
    return float((rejected + higher.min()) / 2 if len(higher) else rejected + 1e-4)
