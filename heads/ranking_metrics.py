"""The scorer's metrics: rank agreement overall and within groups, errors in the user's units
per score band, system-level agreement per speaker, and how much speaker identity a layer holds.

Ranking metrics compare the raw model output with the truth (`key`: the score, or minus the
rank); ties in the truth make no pair and share an average rank (scipy's definitions; the
vectorised within-group Spearman is checked against scipy.stats.spearmanr). Errors (MAE,
RMSE, bands) compare the calibrated output with the score.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ndcg_score

from lake.atomic import atomic_path

POINTS = 2000  # predicted-vs-true pairs kept in metrics.json for the scatter plot


def ranks_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1-based average ranks of `values` inside each group (scipy's rankdata, per group)."""
    order = np.lexsort((values, groups))
    v, g = values[order], groups[order]
    n = len(v)
    group_start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    sizes = np.diff(np.r_[group_start, n])
    ordinal = np.arange(n) - np.repeat(group_start, sizes) + 1.0
    block = np.cumsum(np.r_[True, (v[1:] != v[:-1]) | (g[1:] != g[:-1])]) - 1
    average = np.bincount(block, weights=ordinal) / np.bincount(block)
    out = np.empty(n)
    out[order] = average[block]
    return out


def group_spearman(pred: np.ndarray, key: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """(mean Spearman ρ over groups with two or more distinct truths, how many such groups)."""
    rp, rk = ranks_within(pred, groups), ranks_within(key, groups)
    codes = np.unique(groups, return_inverse=True)[1]
    count = np.bincount(codes).astype(float)
    mean_p, mean_k = np.bincount(codes, rp) / count, np.bincount(codes, rk) / count
    dp, dk = rp - mean_p[codes], rk - mean_k[codes]
    cov, vp, vk = np.bincount(codes, dp * dk), np.bincount(codes, dp * dp), np.bincount(codes, dk * dk)
    usable = (count >= 2) & (vk > 0)
    rho = np.divide(cov, np.sqrt(vp * vk), out=np.zeros_like(cov), where=usable & (vp > 0))
    return (float(rho[usable].mean()) if usable.any() else float("nan")), int(usable.sum())


def _by_group(groups: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(groups, kind="stable")
    cuts = np.flatnonzero(groups[order][1:] != groups[order][:-1]) + 1
    return np.split(order, cuts)


def within_groups(pred: np.ndarray, key: np.ndarray, groups: np.ndarray, k: int,
                  rng: np.random.Generator, max_pairs: int = 2_000_000) -> dict[str, float]:
    """Kendall τ-b (mean over groups), pairwise accuracy (pairs with different truth ordered
    right, prediction ties half right; pooled over groups) and NDCG@k (linear gains: truth minus
    the group's lowest, mean over groups). A group larger than sqrt(max_pairs) is scored on
    max_pairs random pairs."""
    taus, ndcgs, right, pairs = [], [], 0.0, 0
    for rows in _by_group(groups):
        truth, guess = key[rows], pred[rows]
        if len(rows) < 2 or np.ptp(truth) == 0:
            continue
        taus.append(stats.kendalltau(guess, truth).statistic)
        gains = (truth - truth.min())[None, :]
        ndcgs.append(ndcg_score(gains, guess[None, :], k=k))
        if len(rows) ** 2 <= max_pairs:
            i, j = np.triu_indices(len(rows), 1)
        else:
            i, j = rng.integers(0, len(rows), (2, max_pairs))
        differ = truth[i] != truth[j]
        i, j = i[differ], j[differ]
        agree = np.sign(guess[i] - guess[j]) * np.sign(truth[i] - truth[j])
        right += float(np.sum(agree > 0) + 0.5 * np.sum(agree == 0))
        pairs += len(i)
    nan = float("nan")
    return {"kendall_group": float(np.nanmean(taus)) if taus else nan,
            "pairwise_accuracy": right / pairs if pairs else nan, "pairs": pairs,
            "ndcg": float(np.mean(ndcgs)) if ndcgs else nan}


def band_names(bands: tuple[float, ...]) -> list[str]:
    edges = [f"{b:g}" for b in bands]
    return [f"<{edges[0]}", *(f"{a}–{b}" for a, b in zip(edges, edges[1:])), f"≥{edges[-1]}"]


def errors(calibrated: np.ndarray, score: np.ndarray, bands: tuple[float, ...]) -> dict[str, Any]:
    """MAE and RMSE in the score's units, and per band of the true score: rows, MAE and the share
    predicted in the right band."""
    error = calibrated - score
    names = band_names(bands)
    true_band, guessed_band = np.digitize(score, bands), np.digitize(calibrated, bands)
    out: dict[str, Any] = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
                           "band_n": {}, "band_mae": {}, "band_accuracy": {}}
    for b, name in enumerate(names):
        rows = true_band == b
        out["band_n"][name] = int(rows.sum())
        out["band_mae"][name] = float(np.mean(np.abs(error[rows]))) if rows.any() else None
        out["band_accuracy"][name] = float(np.mean(guessed_band[rows] == b)) if rows.any() else None
    return out


def system_spearman(calibrated: np.ndarray, score: np.ndarray, speakers: np.ndarray) -> float | None:
    """Spearman ρ between the mean predicted and the mean true score per speaker (3+ speakers)."""
    known = speakers != None  # noqa: E711 (object array: None is NULL)
    names, codes = np.unique(speakers[known].astype(str), return_inverse=True)
    if len(names) < 3:
        return None
    count = np.bincount(codes)
    guess = np.bincount(codes, calibrated[known]) / count
    truth = np.bincount(codes, score[known]) / count
    return float(stats.spearmanr(guess, truth).statistic)


def speaker_probe(train: np.ndarray, train_speakers: np.ndarray, test: np.ndarray, test_speakers: np.ndarray,
                  seed: int, max_train: int = 20_000) -> dict[str, float] | None:
    """A fresh logistic regression trained to name the speaker from `train` (a frozen layer; at
    most `max_train` rows, a seeded sample), scored on `test` rows whose speaker train has: its
    accuracy, and chance (always naming the most common test speaker). None when fewer than two
    speakers are known."""
    keep_train = train_speakers != None  # noqa: E711
    if keep_train.sum() > max_train:
        chosen = np.random.default_rng(seed).choice(np.flatnonzero(keep_train), max_train, replace=False)
        keep_train = np.isin(np.arange(len(train_speakers)), chosen)
    names = np.unique(train_speakers[keep_train].astype(str))
    keep_test = np.isin(test_speakers.astype(str), names) & (test_speakers != None)  # noqa: E711
    if len(names) < 2 or not keep_test.any():
        return None
    mean, std = train[keep_train].mean(axis=0), train[keep_train].std(axis=0)
    scale = np.where(std > 1e-6, std, 1.0)
    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit((train[keep_train] - mean) / scale, train_speakers[keep_train].astype(str))
    truth = test_speakers[keep_test].astype(str)
    accuracy = float(np.mean(model.predict((test[keep_test] - mean) / scale) == truth))
    chance = float(np.unique(truth, return_counts=True)[1].max() / len(truth))
    return {"speaker_probe_accuracy": accuracy, "speaker_chance": chance, "speaker_probe_n": int(keep_test.sum())}


def points(calibrated: np.ndarray, score: np.ndarray, seed: int) -> dict[str, list[float]]:
    """At most POINTS (true, predicted) pairs, a seeded sample, for the scatter plot."""
    rows = np.arange(len(score))
    if len(rows) > POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, POINTS, replace=False))
    return {"true": [round(float(v), 4) for v in score[rows]], "pred": [round(float(v), 4) for v in calibrated[rows]]}


def scatter_png(result: dict[str, Any], part: str, bands: tuple[float, ...], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true, pred = np.asarray(result[part]["points"]["true"]), np.asarray(result[part]["points"]["pred"])
    fig, ax = plt.subplots(figsize=(5.2, 5))
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="predicted = true")
    for edge in bands:
        ax.axvline(edge, color="grey", lw=0.5, alpha=0.5)
        ax.axhline(edge, color="grey", lw=0.5, alpha=0.5)
    ax.scatter(true, pred, s=10, alpha=0.6)
    rho, mae = result[part].get("spearman"), result[part].get("mae")
    note = ", ".join(x for x in (f"ρ = {rho:.3f}" if rho is not None else "",
                                 f"MAE = {mae:.2f}" if mae is not None else "") if x)
    ax.set_xlabel("true score")
    ax.set_ylabel("predicted score (calibrated)")
    ax.set_title(f"{title}\n{note}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def bands_png(result: dict[str, Any], parts: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result[parts[0]]["band_mae"])
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    width = 0.8 / len(parts)
    for i, part in enumerate(parts):
        mae = [result[part]["band_mae"].get(b) for b in names]
        n = [result[part]["band_n"].get(b) for b in names]
        bars = ax.bar(np.arange(len(names)) + i * width, [m if m is not None else 0 for m in mae], width, label=part)
        for bar, count in zip(bars, n):
            ax.annotate(f"n={count}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(names)) + width * (len(parts) - 1) / 2, names)
    ax.set_xlabel("true score band")
    ax.set_ylabel("mean absolute error")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
