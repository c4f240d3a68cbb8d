"""Playlist metrics (seed 004's and the usual ranked ones) and the two baselines.

Set metrics (the seed's): the predicted clusters expanded to all their songs form a set,
scored against the real playlist's set — precision |P∩T|/|P|, recall |P∩T|/|T|, F1, averaged
over playlists. Ranked metrics: of the sampled list of n songs (one per generated cluster),
Recall@n = hits/min(|T|, n) and NDCG@n with binary relevance.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


def set_prf(predicted: set, truth: set) -> tuple[float, float, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def recall_ndcg(ranked: list, truth: set, k: int) -> tuple[float, float]:
    top = ranked[:k]
    gains = [1.0 if song in truth else 0.0 for song in top]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(truth), k)))
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    return (sum(gains) / min(len(truth), k) if truth else 0.0), (dcg / ideal if ideal else 0.0)


def summarise(sets: list[set], lists: list[list], truths: list[set], k: int) -> dict[str, float]:
    """Mean set P/R/F1 of `sets`, Recall@k/NDCG@k of `lists`, over playlists."""
    prf = np.array([set_prf(p, t) for p, t in zip(sets, truths)]).reshape(-1, 3)
    ranked = np.array([recall_ndcg(r, t, k) for r, t in zip(lists, truths)]).reshape(-1, 2)
    mean = lambda a: float(a.mean()) if len(a) else 0.0  # noqa: E731
    return {"precision": mean(prf[:, 0]), "recall": mean(prf[:, 1]), "f1": mean(prf[:, 2]),
            "recall_at_k": mean(ranked[:, 0]), "ndcg_at_k": mean(ranked[:, 1])}


def popularity(train_songs: list[list[str]], k: int) -> list[str]:
    """The k songs in most training playlists (ties by id, so it is deterministic)."""
    counts = Counter(s for songs in train_songs for s in set(songs))
    return [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


class TitleNeighbours:
    """Title-nearest-neighbour baseline: TF-IDF over character n-grams of titles (works for any
    script and needs no model), the `neighbours` most similar training playlists, their songs
    ranked by summed similarity."""

    def __init__(self, titles: list[str], songs: list[list[str]], neighbours: int = 5):
        self.vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
        self.matrix = self.vectoriser.fit_transform(titles)
        self.songs = songs
        self.neighbours = neighbours

    def recommend(self, titles: list[str], k: int) -> list[list[str]]:
        sims = (self.vectoriser.transform(titles) @ self.matrix.T).toarray()
        out = []
        for row in sims:
            scores: Counter = Counter()
            for j in np.argsort(-row, kind="stable")[:self.neighbours]:
                for song in set(self.songs[j]):
                    scores[song] += float(row[j]) + 1e-9
            out.append([s for s, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]])
        return out
