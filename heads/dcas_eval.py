"""DCAS evaluation: the OT scorer over all users in blocks, its list metrics per (user, target
culture), the culture-leakage probe, and Wasserstein distances between cultures.

List metrics of a top-k list for (user, target culture c), all in `zs`/`za` of the model:
- soft culture distribution of a track: softmax over cultures of −‖zs − centroid‖² / τ (centroids
  of train-split tracks; τ the median squared distance to them); a list's is the mean of its tracks';
- target-culture probability: the list distribution's mass on c;
- calibration KL: KL(q ‖ list) with q = c smoothed by 0.01 over the other cultures;
- alignment KL: KL(history ‖ list), the history distribution weighted by interaction weights;
- serendipity: mean over the list of unexpectedness × relevance, unexpectedness = min(1, zs
  distance to the history's zs mean / its median over candidates), relevance = 1 / (1 + cost /
  median cost) of the transport-conditioned cost in `za`;
- minority exposure@k (on the full ranking): the share of top-k tracks of minority cultures
  (those with fewer train interactions than an even share).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ot
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from heads import dcas_ot
from heads.recommend_metrics import kl


def soft_cultures(zs: np.ndarray, centroids: np.ndarray, tau: float) -> np.ndarray:
    d = ((zs[:, None, :] - centroids[None]) ** 2).sum(-1)
    logits = -d / tau
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


@dataclass
class OTScorer:
    """score(user_rows) for rank_users: one OT per culture block of candidates, a track's score
    log p(its culture | history's culture mix) + log p(track | culture, history) — the latter a
    softmax of minus its transport-conditioned cost in za; list metrics for each (user, target culture)
    gathered on the way (those rank inside one culture, by cost alone)."""
    train: sparse.csr_matrix
    za: np.ndarray
    zs: np.ndarray
    culture: np.ndarray               # class index per track
    n_cultures: int
    epsilon: float
    use_ot: bool = True
    k: int = 20
    centroids: np.ndarray | None = None
    tau: float = 1.0
    notes: list[str] = field(default_factory=list)
    lists: dict[str, list[float]] = field(default_factory=dict)
    epsilons: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        known = self.culture >= 0
        self.centroids = np.stack([self.zs[self.culture == c].mean(0) if np.any(self.culture == c)
                                   else np.zeros(self.zs.shape[1]) for c in range(self.n_cultures)])
        d = ((self.zs[known][:, None, :] - self.centroids[None]) ** 2).sum(-1)
        self.tau = float(np.median(d)) or 1.0
        self.track_culture_p = soft_cultures(self.zs, self.centroids, self.tau)

    def histories(self, rows: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        sub = self.train[rows]
        return ([sub.indices[sub.indptr[i]:sub.indptr[i + 1]] for i in range(len(rows))],
                [sub.data[sub.indptr[i]:sub.indptr[i + 1]].astype(np.float64) for i in range(len(rows))])

    def history_cultures(self, groups: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
        """[users, cultures]: each history's interaction mass per labelled culture, + 0.5 each, normalised."""
        mix = np.full((len(groups), self.n_cultures), 0.5)
        for i, (g, w) in enumerate(zip(groups, weights)):
            known = self.culture[g] >= 0
            np.add.at(mix[i], self.culture[g][known], w[known] / max(w.sum(), 1e-12))
        return mix / mix.sum(1, keepdims=True)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        groups, weights = self.histories(rows)
        empty = [i for i, g in enumerate(groups) if not len(g)]
        for i in empty:  # a user without train history: no mass to transport; scored by nothing (all equal)
            groups[i], weights[i] = np.array([0]), np.array([0.0])
        history, mass = dcas_ot.padded(groups, weights, self.za)
        mass[empty] = 0.0
        mass[empty, 0] = 1.0
        scores = np.zeros((len(rows), len(self.za)), dtype=np.float32)
        hist_p = np.stack([(w[:, None] * self.track_culture_p[g]).sum(0) / max(w.sum(), 1e-12)
                           for g, w in zip(groups, weights)])
        hist_zs = np.stack([self.zs[g].mean(0) for g in groups])
        # za is culture-invariant by design, so costs to different cultures' tracks cannot say which
        # culture the user wants: that is the history's own culture mix (the labels that already
        # block the candidates), with a Jeffreys prior so an unplayed culture keeps some chance
        log_p_culture = np.log(self.history_cultures(groups, weights))
        for c in range(self.n_cultures):
            candidates = np.flatnonzero(self.culture == c)
            if not len(candidates):
                continue
            if self.use_ot:
                costs = dcas_ot.squared_costs(history, self.za[candidates])   # once: transport and score share it
                plan = dcas_ot.transport(history, mass, self.za[candidates], self.epsilon, costs=costs)
                self.notes.extend(n for n in plan.notes if n not in self.notes)
                self.epsilons.append(plan.epsilon)
                cost = dcas_ot.conditioned_cost(plan.plans, history, self.za[candidates], costs)
            else:
                cost = dcas_ot.knn_cost(history, mass, self.za[candidates])
            cost[empty] = 0.0
            scores[:, candidates] = log_p_culture[:, [c]] + within_culture(cost)
            self._list_metrics(rows, c, candidates, cost, hist_p, hist_zs, empty)
        return scores

    def _list_metrics(self, rows: np.ndarray, c: int, candidates: np.ndarray, cost: np.ndarray,
                      hist_p: np.ndarray, hist_zs: np.ndarray, empty: list[int]) -> None:
        seen = self.train[rows][:, candidates].toarray() > 0
        cost = np.where(seen, np.inf, cost)
        k = min(self.k, len(candidates))
        top = np.argsort(cost, axis=1, kind="stable")[:, :k]
        listed = candidates[top]                                     # [users, k]
        list_p = self.track_culture_p[listed].mean(1)                # [users, cultures]
        target = np.full(self.n_cultures, 0.01 / max(self.n_cultures - 1, 1))
        target[c] = 0.99
        distance = np.linalg.norm(self.zs[listed] - hist_zs[:, None, :], axis=-1)
        all_distance = np.linalg.norm(self.zs[candidates][None] - hist_zs[:, None, :], axis=-1)
        unexpected = np.minimum(1.0, distance / np.maximum(np.median(all_distance, 1, keepdims=True), 1e-12))
        finite = np.where(np.isfinite(cost), cost, np.nan)
        relevance = 1.0 / (1.0 + np.take_along_axis(cost, top, 1) /
                           np.maximum(np.nanmedian(finite, 1, keepdims=True), 1e-12))
        keep = np.ones(len(rows), dtype=bool)
        keep[empty] = False
        values = {"target_culture_prob": list_p[:, c], "calibration_kl": kl(target[None], list_p),
                  "alignment_kl": kl(hist_p, list_p), "serendipity": (unexpected * relevance).mean(1)}
        values["target_culture"] = np.full(len(rows), c)
        for name, v in values.items():
            self.lists.setdefault(name, []).extend(np.asarray(v)[keep].tolist())


def within_culture(cost: np.ndarray) -> np.ndarray:
    """[users, candidates of one culture] costs → log-probabilities of each candidate within that
    culture: softmax of −cost / (the user's median cost there), the scale the OT ε is relative to."""
    scale = np.maximum(np.median(cost, axis=1, keepdims=True), 1e-12)
    logits = -cost / scale
    logits = logits - logits.max(1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def minority_exposure(top: np.ndarray, culture: np.ndarray, train: sparse.csr_matrix, n_cultures: int, k: int) -> float:
    plays = np.bincount(culture[train.indices], minlength=n_cultures)
    minority = np.flatnonzero(plays < plays.sum() / n_cultures)
    return float(np.isin(culture[top[:, :k]], minority).mean()) if len(minority) else 0.0


def leakage_probe(Z: np.ndarray, culture: np.ndarray, fit_rows: np.ndarray, eval_rows: np.ndarray, seed: int) -> float:
    """Balanced accuracy of a fresh logistic regression naming the culture from Z (chance: 1/cultures)."""
    fit_rows = fit_rows & (culture >= 0)
    eval_rows = eval_rows & (culture >= 0)
    if len(np.unique(culture[fit_rows])) < 2 or not eval_rows.any():
        return float("nan")
    scaler = StandardScaler().fit(Z[fit_rows])
    probe = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    probe.fit(scaler.transform(Z[fit_rows]), culture[fit_rows])
    return float(balanced_accuracy_score(culture[eval_rows], probe.predict(scaler.transform(Z[eval_rows]))))


def culture_wasserstein(Z: np.ndarray, culture: np.ndarray, n_cultures: int, seed: int, sample: int = 200) -> float:
    """Mean exact W2² between every two cultures' point clouds, divided by the total variance of Z,
    so spaces of different scale compare (0: the cultures are indistinguishable in distribution)."""
    rng = np.random.default_rng(seed)
    scale = float(np.trace(np.atleast_2d(np.cov(Z.T)))) or 1.0
    clouds = []
    for c in range(n_cultures):
        rows = np.flatnonzero(culture == c)
        if len(rows):
            clouds.append(Z[rng.choice(rows, size=min(sample, len(rows)), replace=False)])
    distances = []
    for i in range(len(clouds)):
        for j in range(i + 1, len(clouds)):
            a, b = clouds[i], clouds[j]
            M = ot.dist(a, b)
            distances.append(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), M))
    return float(np.mean(distances) / scale) if distances else float("nan")
