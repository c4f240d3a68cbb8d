"""`just recommend run=RUN user=U target_culture=C k=20` — a dcas run's list for one user.

    just recommend run=latest dataset=demo user=west-u003 target_culture=maqam k=10

The run's `histories.parquet` (train pairs) and `factors.parquet` (zs, za of every track) are
read; the user's history is transported by entropic OT onto the target culture's tracks in za
(heads/dcas_ot.py) and the k cheapest tracks not already in the history are listed with their
culture, title, score (− transport-conditioned cost), relevance and unexpectedness, then the
list's metrics (target-culture probability, calibration KL, alignment KL, serendipity; defined in
heads/dcas_eval.py). An unknown run, user or culture is one line naming it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
from rich.markup import escape
from rich.table import Table
from scipy import sparse

from heads import dcas_eval
from lake import catalog, paths
from lake.cli import UsageError, key_values, make_console, parse_config, run_main


@dataclass
class RecommendConfig:
    user: str
    target_culture: str
    run: str = "latest"        # a run_id, or latest: the newest dcas run (of dataset= when given)
    dataset: str = ""
    k: int = 20
    epsilon: float = 0.05

    def __post_init__(self) -> None:
        if not self.k >= 1:
            raise ValueError(f"k={self.k}: must be 1 or more")
        if not (self.epsilon > 0 and math.isfinite(self.epsilon)):
            raise ValueError(f"epsilon={self.epsilon}: must be a positive finite number")


def find_run(cfg: RecommendConfig) -> tuple[str, object]:
    con = catalog.connect()
    if cfg.run != "latest":
        found = con.execute("SELECT run_id, head, path FROM runs WHERE run_id = $r", {"r": cfg.run}).fetchall()
        if not found:
            raise UsageError(f"run={cfg.run!r} is not in the runs table (just runs lists them)")
    else:
        found = con.execute("SELECT run_id, head, path FROM runs WHERE head = 'dcas' AND ($d = '' OR dataset = $d) "
                            "ORDER BY created_at DESC, run_id DESC LIMIT 1", {"d": cfg.dataset}).fetchall()
        if not found:
            raise UsageError("run=latest: no dcas run" + (f" on dataset {cfg.dataset}" if cfg.dataset else "")
                             + " (train one: just train head=dcas dataset=... backbone=...)")
    run_id, head, path = found[0]
    if head != "dcas":
        raise UsageError(f"run {run_id} is a {head} run: just recommend takes a dcas run")
    folder = paths.root() / path
    if not (folder / "factors.parquet").is_file():
        raise UsageError(f"run {run_id}: {folder / 'factors.parquet'} is missing (retrain it)")
    return run_id, folder


def recommend(cfg: RecommendConfig) -> tuple[str, list[dict], dict[str, float]]:
    run_id, folder = find_run(cfg)
    factors = pq.read_table(folder / "factors.parquet")
    histories = pq.read_table(folder / "histories.parquet")
    track_ids = factors.column("track_id").to_numpy(zero_copy_only=False).astype(str)
    cultures_of = np.array([c or "" for c in factors.column("culture").to_pylist()])
    cultures = sorted(set(cultures_of) - {""})
    if cfg.target_culture not in cultures:
        raise UsageError(f"target_culture={cfg.target_culture!r} is not a culture of run {run_id} "
                         f"(cultures: {', '.join(cultures)})")
    users = histories.column("user_id").to_numpy(zero_copy_only=False).astype(str)
    mine = users == cfg.user
    if not mine.any():
        known = sorted(set(users))
        raise UsageError(f"user={cfg.user!r} has no history in run {run_id} ({len(known)} users, e.g. "
                         f"{', '.join(known[:3])})")
    rows = np.searchsorted(track_ids, histories.column("track_id").to_numpy(zero_copy_only=False).astype(str)[mine])
    weights = histories.column("weight").to_numpy()[mine]
    train = sparse.csr_matrix((weights, (np.zeros(len(rows), dtype=np.int64), rows)), shape=(1, len(track_ids)))
    za, zs = (np.stack(factors.column(n).to_numpy(zero_copy_only=False)).astype(np.float64) for n in ("za", "zs"))
    culture = np.array([cultures.index(c) if c else -1 for c in cultures_of])
    scorer = dcas_eval.OTScorer(train, za, zs, culture, len(cultures), cfg.epsilon, k=cfg.k)
    scores = scorer(np.array([0]))[0].astype(np.float64)
    target = cultures.index(cfg.target_culture)
    candidates = np.flatnonzero((culture == target) & ~np.isin(np.arange(len(track_ids)), rows))
    top = candidates[np.argsort(-scores[candidates], kind="stable")[:cfg.k]]
    cost = -scores[candidates]
    hist_zs = zs[rows].mean(0)
    spread = np.median(np.linalg.norm(zs[candidates] - hist_zs, axis=1)) or 1.0
    titles = factors.column("title").to_pylist()
    listed = [{"track_id": track_ids[t], "culture": cultures_of[t], "title": titles[t] or "",
               "score": float(scores[t]), "relevance": float(1 / (1 + -scores[t] / (np.median(cost) or 1.0))),
               "unexpectedness": float(min(1.0, np.linalg.norm(zs[t] - hist_zs) / spread))} for t in top]
    at = [i for i, c in enumerate(scorer.lists["target_culture"]) if c == target]
    summary = {name: float(scorer.lists[name][at[0]]) for name in
               ("target_culture_prob", "calibration_kl", "alignment_kl", "serendipity")}
    summary.update({"notes": scorer.notes})
    return run_id, listed, summary


def main(argv: list[str]) -> int:
    cfg = parse_config(RecommendConfig, key_values(argv))
    run_id, listed, summary = recommend(cfg)
    table = Table(title=f"dcas run {run_id} · {cfg.user} → {cfg.target_culture}", header_style="bold")
    for name in ("track", "culture", "title", "score", "relevance", "unexpectedness"):
        table.add_column(name, justify="right" if name in ("score", "relevance", "unexpectedness") else "left")
    for row in listed:
        table.add_row(escape(row["track_id"]), escape(row["culture"]), escape(row["title"]), f"{row['score']:.3f}",
                      f"{row['relevance']:.3f}", f"{row['unexpectedness']:.3f}")
    console = make_console()
    console.print(table)
    console.print(f"target-culture prob {summary['target_culture_prob']:.3f} · calibration KL "
                  f"{summary['calibration_kl']:.3f} · alignment KL {summary['alignment_kl']:.3f} · "
                  f"serendipity {summary['serendipity']:.3f}", highlight=False)
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    return 0


if __name__ == "__main__":
    run_main(main)
