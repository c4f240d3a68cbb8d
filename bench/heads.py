"""Heads' training time against a plain baseline on the same arrays, in one run.

head=probe: the probe against scikit-learn's LogisticRegression.

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

head=scorer: the scorer (ListMLE over groups, the default) against a plain torch MSE regressor
with the same network (standardise → Linear → ReLU → Dropout → Linear), the same optimiser,
epochs and clips per step (the scorer's `lists` × the mean group size), on the same float32
arrays: `rows` clips in groups of 5–50 whose score is a linear function of the vectors plus
noise. Both run every epoch (no early stopping) and score val after each, as the scorer does;
the scorer's time also holds its sub-list dealing, its val Spearman and its isotonic
calibration. The fits alternate A B A B `repeat` times; medians. Target: scorer / MSE ≤ 2.

    python bench/heads.py head=scorer [rows=100000] [dim=768] [epochs=5] [val=10000] [test=10000] [repeat=3]
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import UsageError, parse_config, run_main, split_args  # noqa: E402


@dataclass
class BenchConfig:
    head: str = "probe"        # probe | scorer
    rows: int = 100_000
    dim: int = 768
    classes: int = 10
    separation: float = 0.08   # per-dimension spread of the class centres, in noise units
    val: int = 10_000
    test: int = 10_000
    repeat: int = 3
    epochs: int = 5            # scorer: epochs of both fits


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


def groups_of_scores(cfg: BenchConfig) -> tuple[np.ndarray, ...]:
    """(X, score, group) for train, val and test: groups of 5–50 clips (the last one cut to fit),
    score = X·w + noise."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(cfg.dim).astype(np.float32) / np.sqrt(cfg.dim)

    def draw(n: int, first_group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sizes = rng.integers(5, 51, n // 5 + 1)
        group = np.repeat(np.arange(len(sizes)), sizes)[:n] + first_group
        X = rng.standard_normal((n, cfg.dim), dtype=np.float32)
        score = 70 + 10 * (X @ w + 0.5 * rng.standard_normal(n).astype(np.float32))
        return X, score.astype(np.float64), group
    return (*draw(cfg.rows, 0), *draw(cfg.val, 10**7), *draw(cfg.test, 2 * 10**7))


def mse_regressor(X: np.ndarray, score: np.ndarray, X_val: np.ndarray, hidden: int, dropout: float, epochs: int,
                  batch_size: int, lr: float, weight_decay: float, seed: int = 0):
    """The plain baseline: standardise, minibatch MSE on the standardised score, val predicted each epoch."""
    import torch
    from torch import nn

    mean, std = X.mean(axis=0), X.std(axis=0)
    Xt = torch.from_numpy((X - mean) / std)
    Xv = torch.from_numpy((X_val - mean) / std)
    y = torch.from_numpy(((score - score.mean()) / score.std()).astype(np.float32))
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(y), generator=order).split(batch_size):
            opt.zero_grad()
            loss = ((net(Xt[batch]).squeeze(-1) - y[batch]) ** 2).mean()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            net(Xv)
    net.eval()
    return lambda Z: net(torch.from_numpy((Z - mean) / std)).squeeze(-1).detach().numpy()


def bench_scorer(cfg: BenchConfig) -> int:
    import torch

    from heads import lbfgs, ranking
    from heads.ranking_metrics import group_spearman, within_groups
    from heads.scorer import Scorer, threads

    started = time.perf_counter()
    X, score, group, X_val, score_val, group_val, X_test, score_test, group_test = groups_of_scores(cfg)
    sizes = np.bincount(group)
    print(f"{cfg.rows:,} × {cfg.dim} train in {len(sizes):,} groups of {sizes.min()}–{sizes.max()} (mean "
          f"{sizes.mean():.1f}), {cfg.val:,} val, {cfg.test:,} test ({time.perf_counter() - started:.1f} s to generate)")
    scorer = Scorer(epochs=cfg.epochs, patience=cfg.epochs)
    lists = len(ranking.sublists(group, score, scorer.max_list, np.random.default_rng(0)))
    per_step = int(round(cfg.rows * scorer.lists / lists))  # the same clips per step and steps per epoch
    n_threads = threads(scorer.lists * scorer.max_list, cfg.dim)
    print(f"{cfg.epochs} epochs each, hidden {scorer.hidden}, {n_threads} torch thread(s) for both (the scorer's rule); "
          f"{lists:,} lists of at most {scorer.max_list}, {scorer.lists} per step ≈ {per_step} clips; MSE batch {per_step}")

    torch.optim.AdamW(torch.nn.Linear(1, 1).parameters())  # its first use imports torch._dynamo (~2 s): not timed
    scorer_times, mse_times = [], []
    for _ in range(max(1, cfg.repeat)):
        started = time.perf_counter()
        ours = Scorer(epochs=cfg.epochs, patience=cfg.epochs).fit(X, score, group, X_val, score_val, group_val, score=score)
        scorer_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with lbfgs.torch_threads(n_threads):
            plain = mse_regressor(X, score, X_val, scorer.hidden, scorer.dropout, cfg.epochs, per_step, scorer.lr,
                                  scorer.weight_decay)
        mse_times.append(time.perf_counter() - started)
    print("fits, seconds:  scorer " + " ".join(f"{t:.2f}" for t in scorer_times)
          + "  ·  MSE " + " ".join(f"{t:.2f}" for t in mse_times))

    def quality(pred: np.ndarray) -> str:
        rho = float(np.corrcoef(np.argsort(np.argsort(pred)), np.argsort(np.argsort(score_test)))[0, 1])
        pairs = within_groups(pred, score_test, group_test, 5, np.random.default_rng(0))["pairwise_accuracy"]
        return f"{rho:9.4f}{group_spearman(pred, score_test, group_test)[0]:9.4f}{pairs:10.4f}"
    scorer_s, mse_s = float(np.median(scorer_times)), float(np.median(mse_times))
    print(f"{'':32}{'median s':>9}{'test ρ':>9}{'ρ group':>9}{'pair acc':>10}")
    print(f"{'audiolake scorer (ListMLE)':32}{scorer_s:9.2f}{quality(ours.predict_raw(X_test))}")
    print(f"{'plain torch MSE regressor':32}{mse_s:9.2f}{quality(plain(X_test))}")
    print(f"scorer / MSE = {scorer_s / mse_s:.2f}x time  (target <= 2)")
    return 0


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    if cfg.head == "scorer":
        return bench_scorer(cfg)
    if cfg.head != "probe":
        raise UsageError(f"head={cfg.head!r}: expected probe or scorer")
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
