"""Classification metrics (scikit-learn's), any head's metrics aggregated over seeds, and the confusion plot."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from lake.atomic import atomic_path


def macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes present in y or pred (scikit-learn's definition), in numpy:
    early stopping calls it every epoch."""
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    return float(f1[denominator > 0].mean())


def classification(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """accuracy, balanced accuracy, macro-F1, per-class accuracy (recall), ROC-AUC (binary), confusion."""
    labels = np.arange(len(classes))
    pred = proba.argmax(axis=1)
    present = np.isin(labels, y)
    recall = skm.recall_score(y, pred, labels=labels, average=None, zero_division=0)
    out: dict[str, Any] = {
        "n": len(y),
        "accuracy": float(skm.accuracy_score(y, pred)),
        # over the classes present here: a class absent from this split has no recall to average
        "balanced_accuracy": float(np.mean(recall[present])),
        "macro_f1": float(skm.f1_score(y, pred, labels=labels[present], average="macro", zero_division=0)),
        "per_class_accuracy": {c: (float(r) if p else None) for c, r, p in zip(classes, recall, present)},
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
    }
    if len(classes) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y, proba[:, 1])) if present.all() else None
    return out


def aggregate(runs: list[Any], counts: tuple[str, ...] = (), key: str = "") -> tuple[Any, Any]:
    """(mean, std) of metric dicts from several seeds, key by key.

    Numbers average (std beside them); lists under a key named in `counts` (a confusion matrix)
    add up; any other list (a curve, per-item predictions) is the first seed's, neither summed
    nor averaged (each seed's own stays in metrics.seeds.per_seed); text (a chosen layer) keeps
    the most common value. std mirrors the numeric leaves only.
    """
    first = runs[0]
    if isinstance(first, dict):
        mean, std = {}, {}
        for name in first:
            m, s = aggregate([r.get(name) if isinstance(r, dict) else None for r in runs], counts, name)
            mean[name] = m
            if s is not None:
                std[name] = s
        return mean, (std or None)
    if isinstance(first, bool) or first is None or isinstance(first, str):
        values = [r for r in runs if r is not None]
        return (Counter(values).most_common(1)[0][0] if values else None), None
    if isinstance(first, (int, float)):
        values = [float(r) for r in runs if isinstance(r, (int, float)) and not (isinstance(r, float) and math.isnan(r))]
        if not values:
            return None, None
        if isinstance(first, int) and len(set(values)) == 1:
            return first, None
        return float(np.mean(values)), float(np.std(values))
    if isinstance(first, list) and key in counts:
        return np.sum(np.asarray(runs), axis=0).tolist(), None
    return first, None


def confusion_png(matrix: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.6 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
