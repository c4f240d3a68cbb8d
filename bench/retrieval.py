"""The retrieval head's speed: term search in the FAISS index vs brute-force numpy, and training throughput.

Search: `terms` random unit vectors of `dim` (1M × 512 by default: the size of a big glossary,
2 GB of float32) in a faiss.IndexFlatIP — what the head writes as index.faiss — and `queries`
random unit query vectors; both answer the top `k` by inner product (= cosine). numpy does
what a user would write without FAISS: the queries in blocks of `block` rows, `block × terms`
matmul, argpartition for the k best, argsort of those. Each is timed `repeat` times,
alternating; the fastest of each is reported (a neighbour's load on a shared machine does not
decide the ratio), per query. The two answers are checked equal (ids; the scores to 1e-4).

Training: the head's own fit (heads/retrieval.py Retriever.fit: both MLPs, multi-positive
InfoNCE both ways on terms and chunk texts, glossary hard negatives optional) on `chunks`
synthetic chunks of `audio_dim` (after one short warm-up fit) with 1–2 terms each out of `glossary` terms, at batch `batch`,
for `epochs` epochs with validation each epoch as in training; chunks/s = train chunks × epochs / time.
Term and chunk-text vectors are random unit vectors of `text_dim` (384: text_model=minilm's
width): they are read from the text_embeddings table in training, so encoding is not timed here.

    python bench/retrieval.py [terms=1000000] [dim=512] [queries=10000] [k=10] [block=100] [repeat=2]
                              [chunks=20000] [audio_dim=768] [text_dim=384] [glossary=5000] [batch=256] [epochs=2] [hard=false]
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
    terms: int = 1_000_000
    dim: int = 512
    queries: int = 10_000
    k: int = 10
    block: int = 100          # numpy: query rows per matmul (block × terms float32, and argpartition's int64 of it)
    repeat: int = 2
    chunks: int = 20_000
    audio_dim: int = 768
    text_dim: int = 384        # text_model=minilm's width
    glossary: int = 5_000
    batch: int = 256
    epochs: int = 2
    hard: bool = False
    search: bool = True
    train: bool = True
    threads: int = 0           # torch threads for training; 0: torch's default


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def numpy_search(terms: np.ndarray, queries: np.ndarray, k: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.empty((len(queries), k), np.int64)
    scores = np.empty((len(queries), k), np.float32)
    for start in range(0, len(queries), block):
        sims = queries[start:start + block] @ terms.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(sims, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        ids[start:start + block] = np.take_along_axis(top, order, 1)
        scores[start:start + block] = np.take_along_axis(top_scores, order, 1)
    return scores, ids


def bench_search(cfg: BenchConfig) -> None:
    import faiss

    rng = np.random.default_rng(0)
    terms, queries = unit(rng, cfg.terms, cfg.dim), unit(rng, cfg.queries, cfg.dim)
    index = faiss.IndexFlatIP(cfg.dim)
    start = time.perf_counter()
    index.add(terms)
    built = time.perf_counter() - start
    best = {"faiss": np.inf, "numpy": np.inf}
    for _ in range(cfg.repeat):
        start = time.perf_counter()
        f_scores, f_ids = index.search(queries, cfg.k)
        best["faiss"] = min(best["faiss"], time.perf_counter() - start)
        start = time.perf_counter()
        n_scores, n_ids = numpy_search(terms, queries, cfg.k, cfg.block)
        best["numpy"] = min(best["numpy"], time.perf_counter() - start)
    same = float(np.mean(f_ids == n_ids))
    assert np.allclose(f_scores, n_scores, atol=1e-4), "faiss and numpy disagree on the scores"
    print(f"search: {cfg.terms:,} terms × {cfg.dim}, {cfg.queries:,} queries, k={cfg.k} "
          f"(faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; index built in {built:.2f} s)")
    for name, seconds in best.items():
        print(f"  {name:5s} {seconds:8.2f} s  {1e3 * seconds / cfg.queries:8.3f} ms/query")
    print(f"  numpy / faiss = {best['numpy'] / best['faiss']:.2f}x; same ids {same:.4f} (ties may order differently)")


def bench_train(cfg: BenchConfig) -> None:
    import torch

    from heads.retrieval import HYPERPARAMETERS, Config, Retriever

    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # the fit picks one thread itself for small steps (heads/lbfgs.py)
    rng = np.random.default_rng(1)
    names = [f"term {i} {chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(cfg.glossary)]
    term_vectors = unit(rng, cfg.glossary, cfg.text_dim)
    centres = rng.standard_normal((cfg.glossary, cfg.audio_dim), dtype=np.float32)
    positives = [rng.choice(cfg.glossary, size=rng.integers(1, 3), replace=False) for _ in range(cfg.chunks)]
    X = np.stack([centres[p].sum(0) for p in positives]) + rng.standard_normal((cfg.chunks, cfg.audio_dim), dtype=np.float32)
    split = rng.random(cfg.chunks)
    train, val = split < 0.9, split >= 0.9
    text_ids = np.arange(cfg.chunks)
    chunk_vectors = unit(rng, cfg.chunks, cfg.text_dim)
    hyper = Config(dataset="bench", backbone="x", batch=cfg.batch, epochs=cfg.epochs, patience=cfg.epochs,
                   hard_negatives="glossary" if cfg.hard else "none")
    model = Retriever(0, names, {}, **{k: getattr(hyper, k) for k in HYPERPARAMETERS})
    warm = np.zeros(cfg.chunks, bool)
    warm[:2 * cfg.batch] = True  # one short fit first: torch's first optimiser step imports its compiler
    model.fit(X.astype(np.float32), positives, warm & train, warm & val, term_vectors, text_ids, chunk_vectors)
    start = time.perf_counter()
    model.fit(X.astype(np.float32), positives, train, val, term_vectors, text_ids, chunk_vectors)
    seconds = time.perf_counter() - start
    rate = int(train.sum()) * cfg.epochs / seconds
    print(f"training: {int(train.sum()):,} chunks × {cfg.epochs} epochs at batch {cfg.batch}, audio {cfg.audio_dim}-d, "
          f"text {cfg.text_dim}-d, {cfg.glossary:,} terms, hard negatives {'on' if cfg.hard else 'off'}: "
          f"{seconds:.1f} s, {rate:,.0f} chunks/s (val scoring each epoch included)")


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    if cfg.search:
        bench_search(cfg)
    if cfg.train:
        bench_train(cfg)
    return 0


if __name__ == "__main__":
    run_main(main)
