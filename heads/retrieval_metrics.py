"""Retrieval metrics on a similarity matrix: chunks × main terms (cosine in the shared space).

`positives` is a list, per chunk, of main-term ids (aliases were folded into their main term at
ingest, so an alias counts as its main term). Definitions:
- recall@K (audio→term): mean over chunks with a term of |top-K ∩ positives| / |positives|;
- map@10: mean over chunks with a term of AP@10 = Σ_k precision@k · rel_k / min(|positives|, 10);
- text→audio recall@K: per term present in the part, whether one of its chunks is in the term's
  top K chunks (all chunks of the part are candidates), averaged over terms;
- rejection: a chunk's score is its best term similarity (or the head's accept score, see
  heads/retrieval.py); accepted when ≥ the threshold.
  rejection_rate = share of no-term chunks rejected, false_accept_rate = share accepted,
  false_reject_rate = share of chunks WITH a term rejected; ROC-AUC / EER of the score for
  "has a term" vs "has none";
- seen/unseen: recall@5 of positives whose term occurs in train vs not;
- per-term recall@5 (a positive found in its chunk's top 5), the 20 worst terms with ≥ 1 positive.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

KS = (1, 5, 10)


def topk(sims: np.ndarray, k: int) -> np.ndarray:
    k = min(k, sims.shape[1])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def audio_to_term(sims: np.ndarray, positives: Sequence[np.ndarray]) -> dict[str, Any]:
    rows = [i for i, p in enumerate(positives) if len(p)]
    out: dict[str, Any] = {}
    if not rows:
        return {f"recall_at_{k}": None for k in KS} | {"map_at_10": None}
    top = topk(sims[rows], max(KS))
    hits = np.array([np.isin(top[r], positives[i]) for r, i in enumerate(rows)])  # [rows, 10]
    sizes = np.array([len(positives[i]) for i in rows], np.float64)
    for k in KS:
        out[f"recall_at_{k}"] = float(np.mean(hits[:, :k].sum(1) / sizes))
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    out["map_at_10"] = float(np.mean((precision * hits).sum(1) / np.minimum(sizes, hits.shape[1])))
    return out


def term_to_audio(sims: np.ndarray, positives: Sequence[np.ndarray]) -> dict[str, Any]:
    present = np.unique(np.concatenate([p for p in positives if len(p)] or [np.zeros(0, np.int64)]))
    if len(present) == 0:
        return {f"text_to_audio_recall_at_{k}": None for k in KS}
    member = np.zeros((len(present), sims.shape[0]), bool)
    where = {t: n for n, t in enumerate(present)}
    for chunk, p in enumerate(positives):
        for t in p:
            member[where[t], chunk] = True
    top = topk(sims[:, present].T, max(KS))
    hits = np.take_along_axis(member, top, 1)
    return {f"text_to_audio_recall_at_{k}": float(np.mean(hits[:, :k].any(1))) for k in KS}


def rejection(best: np.ndarray, has_term: np.ndarray, threshold: float) -> dict[str, Any]:
    accepted = best >= threshold
    out: dict[str, Any] = {
        "rejection_rate": float(np.mean(~accepted[~has_term])) if (~has_term).any() else None,
        "false_accept_rate": float(np.mean(accepted[~has_term])) if (~has_term).any() else None,
        "false_reject_rate": float(np.mean(~accepted[has_term])) if has_term.any() else None,
        "threshold": threshold if np.isfinite(threshold) else None,
        "roc_auc": None, "eer": None,
    }
    if has_term.any() and (~has_term).any():
        out["roc_auc"] = float(roc_auc_score(has_term, best))
        fpr, tpr, _ = roc_curve(has_term, best)
        fnr = 1 - tpr
        i = int(np.argmin(np.abs(fnr - fpr)))
        out["eer"] = float((fpr[i] + fnr[i]) / 2)
        out["roc"] = {"fpr": fpr.tolist()[:: max(1, len(fpr) // 200)], "tpr": tpr.tolist()[:: max(1, len(tpr) // 200)]}
    return out


def per_term(sims: np.ndarray, positives: Sequence[np.ndarray], terms: Sequence[str], seen: set[int],
             k: int = 5, worst: int = 20) -> dict[str, Any]:
    top = topk(sims, k)
    found: dict[int, list[bool]] = {}
    for i, p in enumerate(positives):
        for t in p:
            found.setdefault(int(t), []).append(bool(np.isin(t, top[i])))
    seen_hits = [h for t, hs in found.items() if t in seen for h in hs]
    unseen_hits = [h for t, hs in found.items() if t not in seen for h in hs]
    rows = sorted(((float(np.mean(hs)), len(hs), terms[t]) for t, hs in found.items()), key=lambda r: (r[0], -r[1], r[2]))
    return {
        f"recall_at_{k}_seen": float(np.mean(seen_hits)) if seen_hits else None,
        f"recall_at_{k}_unseen": float(np.mean(unseen_hits)) if unseen_hits else None,
        "positives_seen": len(seen_hits), "positives_unseen": len(unseen_hits),
        "worst_terms": [{"term": term, "recall_at_5": r, "positives": n} for r, n, term in rows[:worst]],
    }


def evaluate(sims: np.ndarray, positives: Sequence[np.ndarray], threshold: float, terms: Sequence[str],
             seen: set[int], accept: np.ndarray | None = None) -> dict[str, Any]:
    """`accept`: the score the threshold applies to (default: the best term similarity)."""
    has_term = np.array([len(p) > 0 for p in positives])
    best = sims.max(axis=1) if sims.shape[1] else np.full(len(sims), -np.inf)
    best = best if accept is None else accept
    out = {**audio_to_term(sims, positives), **term_to_audio(sims, positives), **rejection(best, has_term, threshold),
           **per_term(sims, positives, terms, seen)}
    out["chunks"] = int(len(positives))
    out["no_term_chunks"] = int((~has_term).sum())
    out["best_similarity"] = {"term": best[has_term].tolist()[:5000], "no_term": best[~has_term].tolist()[:5000]}
    return out
