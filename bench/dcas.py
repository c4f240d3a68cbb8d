"""DCAS at size: one training epoch, and full-ranking evaluation of every user in batches against
a per-user loop over the same model (seed 000's recommender loops over users in Python).

Synthetic: `tracks` vectors of `dim` (culture planted in some dimensions), `users` users with
`per_user` interactions each (80% own culture). The batched path is heads.dcas_eval.OTScorer
through heads.recommend_metrics.rank_users (blocks of `block` users, POT's batched log-domain
Sinkhorn, float32 scores per block); the loop calls the same scorer one user at a time, on
`loop_users` users, and its time is scaled to all users; a second loop does what seed 000's
recommender does per call — re-encode the catalogue, then the same OT for one user. Peak memory
is the process's max RSS. Target: batched ≥ 10× faster than the loop.

    python bench/dcas.py [tracks=100000] [dim=768] [users=10000] [per_user=100] [block=64] [loop_users=50] [epochs=1]

The issue's full size (100k × 768, 10k users, 1M interactions) needs several GB and tens of
minutes on two shared cores; smaller sizes show the same ratio.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's heads, not bench/heads.py

from heads import dcas_eval  # noqa: E402
from heads import recommend_metrics as rm  # noqa: E402
from heads.dcas_model import DCAS  # noqa: E402


def main(argv: list[str]) -> int:
    opts = {"tracks": 100_000, "dim": 768, "users": 10_000, "per_user": 100, "block": 64, "loop_users": 50,
            "epochs": 1, "cultures": 4, "z": 16}
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in opts:
            print(f"unknown key {key}= (known: {', '.join(opts)})", file=sys.stderr)
            return 2
        opts[key] = int(value)
    rng = np.random.default_rng(0)
    n, C = opts["tracks"], opts["cultures"]
    culture = rng.integers(0, C, n)
    X = (rng.standard_normal((n, opts["dim"])) + np.pad(3 * np.eye(C)[culture], ((0, 0), (0, opts["dim"] - C))))
    X = X.astype(np.float32)
    users = np.repeat(np.arange(opts["users"]), opts["per_user"])
    own = rng.random(len(users)) < 0.8
    by_culture = [np.flatnonzero(culture == c) for c in range(C)]
    user_culture = users % C
    track = rng.integers(0, n, len(users))
    for c in range(C):
        mine = own & (user_culture == c)
        track[mine] = by_culture[c][rng.integers(0, len(by_culture[c]), mine.sum())]
    matrix = sparse.csr_matrix((np.ones(len(users)), (users, track)), shape=(opts["users"], n))
    matrix.data[:] = 1.0
    held = np.zeros(opts["users"], dtype=np.int64)
    for u in range(opts["users"]):  # one held-out pair per user (setup, not timed)
        held[u] = matrix.indices[matrix.indptr[u]]
    test = sparse.csr_matrix((np.ones(opts["users"]), (np.arange(opts["users"]), held)), shape=matrix.shape)
    train = (matrix - matrix.multiply(test)).tocsr()
    train.eliminate_zeros()

    model = DCAS([str(c) for c in range(C)], [], hidden=256, z=opts["z"], epochs=opts["epochs"], batch=1024)
    start = time.perf_counter()
    u, t = train.nonzero()
    model.fit(X, culture, None, u, t)
    epoch_s = (time.perf_counter() - start) / opts["epochs"]
    factors = model.factors(X)
    scorer = dcas_eval.OTScorer(train, factors["za"], factors["zs"], culture, C, 0.05)

    start = time.perf_counter()
    ranked = rm.rank_users(scorer, train, test, block=opts["block"])
    batched_s = time.perf_counter() - start
    loop_rows = np.arange(min(opts["loop_users"], opts["users"]))
    start = time.perf_counter()
    rm.rank_users(scorer, train[loop_rows], test[loop_rows], block=1)
    loop_s = (time.perf_counter() - start) * opts["users"] / len(loop_rows)
    start = time.perf_counter()
    for u in loop_rows:  # the seed's recommender: per user, the catalogue re-encoded, then the same OT
        fresh = model.factors(X)
        own = dcas_eval.OTScorer(train[[u]], fresh["za"], fresh["zs"], culture, C, 0.05)
        rm.rank_users(own, train[[u]], test[[u]], block=1)
    seed_loop_s = (time.perf_counter() - start) * opts["users"] / len(loop_rows)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"{n:,} tracks × {opts['dim']}, {opts['users']:,} users, {len(users):,} interactions")
    print(f"training epoch: {epoch_s:.1f} s")
    print(f"full-ranking evaluation, all users: batched {batched_s:.1f} s vs per-user loop over the same scorer "
          f"~{loop_s:.1f} s → {loop_s / batched_s:.1f}×, vs the seed's loop (catalogue re-encoded per user) "
          f"~{seed_loop_s:.1f} s → {seed_loop_s / batched_s:.1f}× (loops measured on {len(loop_rows)} users; "
          f"target ≥ 10×); NDCG@20 {ranked.per_user['ndcg@20'].mean():.3f}; peak RSS {peak_gb:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
