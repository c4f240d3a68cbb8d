"""Probe training time against scikit-learn's LogisticRegression, on the same data, in one run.

Synthetic Gaussian clusters (one centre per class, unit noise), standardised once with train
statistics and handed to both as the same float32 arrays. scikit-learn fits lbfgs with its
defaults (C=1, max_iter=100, tol=1e-4; it converts to float64 itself); the probe fits with
its defaults (full-batch L-BFGS, early stopping on val macro-F1, patience 10) and the
matching L2 penalty (weight_decay = 1/(C·n)), unweighted classes like scikit-learn's default.
Each timing includes everything its fit does (the probe's own standardisation, which is a
no-op on standardised data, and its per-epoch val scoring). The two fits alternate `repeat`
times and each reports its fastest, so a neighbour's load on a shared machine does not decide
the ratio. Target: probe / sklearn ≤ 1.

    python bench/heads.py [rows=100000] [dim=768] [classes=10] [separation=0.08] [val=10000] [test=10000] [repeat=3]
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import parse_config, run_main, split_args  # noqa: E402


@dataclass
class BenchConfig:
    rows: int = 100_000
    dim: int = 768
    classes: int = 10
    separation: float = 0.08   # per-dimension spread of the class centres, in noise units
    val: int = 10_000
    test: int = 10_000
    repeat: int = 3


def clusters(cfg: BenchConfig) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    centres = (cfg.separation * rng.standard_normal((cfg.classes, cfg.dim))).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, cfg.classes, n)
        return centres[y] + rng.standard_normal((n, cfg.dim), dtype=np.float32), y

    (X, y), (X_val, y_val), (X_test, y_test) = draw(cfg.rows), draw(cfg.val), draw(cfg.test)
    mean, std = X.mean(axis=0), X.std(axis=0)
    return tuple(a for pair in [((X - mean) / std, y), ((X_val - mean) / std, y_val), ((X_test - mean) / std, y_test)]
                 for a in pair)


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    from sklearn.linear_model import LogisticRegression

    from heads.probe import Probe

    started = time.perf_counter()
    X, y, X_val, y_val, X_test, y_test = clusters(cfg)
    print(f"{cfg.rows:,} × {cfg.dim} train, {cfg.val:,} val, {cfg.test:,} test, {cfg.classes} classes "
          f"({time.perf_counter() - started:.1f} s to generate)")

    probe_times, sklearn_times = [], []
    for _ in range(max(1, cfg.repeat)):
        started = time.perf_counter()
        ours = Probe(class_weight="none", weight_decay=1.0 / len(y)).fit(X, y, X_val, y_val)
        probe_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = LogisticRegression(C=1.0, max_iter=100).fit(X, y)
        sklearn_times.append(time.perf_counter() - started)
    probe_s, sklearn_s = min(probe_times), min(sklearn_times)
    probe_acc = ours.evaluate(X_test, y_test)["accuracy"]
    sklearn_acc = float(theirs.score(X_test, y_test))
    print("fits, seconds:  probe " + " ".join(f"{t:.2f}" for t in probe_times)
          + "  ·  sklearn " + " ".join(f"{t:.2f}" for t in sklearn_times))

    print(f"{'':34}{'best s':>9}{'test acc':>10}{'iterations':>12}")
    print(f"{'audiolake probe (L-BFGS)':34}{probe_s:9.2f}{probe_acc:10.4f}"
          f"{f'{ours.epochs_run_} (best {ours.best_epoch_})':>12}")
    print(f"{'scikit-learn LogisticRegression':34}{sklearn_s:9.2f}{sklearn_acc:10.4f}{int(theirs.n_iter_[0]):>12}")
    print(f"probe / sklearn = {probe_s / sklearn_s:.2f}x time  (target <= 1), "
          f"accuracy {100 * (probe_acc - sklearn_acc):+.2f} points")
    return 0


if __name__ == "__main__":
    run_main(main)
