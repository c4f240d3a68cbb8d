"""Seeded, stratified, group-aware assignment of rows to train/val/test: the pure algorithm.

Rows linked by an equal non-null value in any link column (the same speaker, the same
sha256 of audio) form one *unit*, and a unit never straddles two splits. Then:

1. each unit belongs to its dominant stratum (the one most of its rows are in; ties go to
   the smallest name);
2. the units are laid out in one sequence: the strata in a seeded random order, and inside
   each stratum its units in a seeded random order (units first sorted by their smallest
   track id, so the result depends on the rows, not on the order they were read in);
3. the sequence is walked once, each unit going to the split furthest below its running
   target: argmax_s r_s·(P + c) − A_s, where P rows were placed before this unit of c rows
   and A_s of them are in split s (ties go to the earlier split).

Why this and not scikit-learn's StratifiedGroupKFold: that one makes k equal folds (0.8/0.1/0.1
only as 10 folds merged 8+1+1, 0.75/0.125/0.125 as 8), takes a single label column, and
states no bound. A sequential walk against running targets is stratified systematic
allocation: every prefix of the sequence is proportional, so each stratum, being a
contiguous block, gets its proportional share, and the remainder of a small stratum (3 rows
cannot give test 0.3 of a row) carries over to the next block instead of every small
stratum rounding towards train.

Tolerance, with S the number of splits of positive ratio and g the rows of the largest unit:

    per split     |n_s − r_s·N|    < (S−1)²/S · g     (0.8,0.1,0.1 without groups: < 1.34 rows)
    per stratum   |n_sk − r_s·N_k| < (S−1) · g        (rows counted in their unit's dominant stratum)

Proof: after each placement the deficits d_s = r_s·P − A_s sum to 0. Before placing c rows
they sum to c, so the chosen split had d ≥ c/S and keeps d > −c·(S−1)/S; the others' deficits
only grow. Hence every d_s > −g·(S−1)/S at all times and, as they sum to 0, d_s < (S−1)·g·(S−1)/S.
A stratum's block changes d_s by the difference of two such values: less than (S−1)·g.
A unit mixing strata counts in its dominant one, so when groups mix strata the other strata
are balanced only statistically; that is the price of keeping a group whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

SPLIT_NAMES = ("train", "val", "test")
ALGORITHM = "strata-blocks-running-target-v1"


@dataclass
class Assignment:
    split: np.ndarray        # per row: "train" | "val" | "test"
    unit: np.ndarray         # per row: its unit, numbered by smallest track id
    unit_sizes: np.ndarray   # rows per unit
    ratios: tuple[float, ...]

    @property
    def largest_unit(self) -> int:
        return int(self.unit_sizes.max()) if len(self.unit_sizes) else 0

    def bound_rows(self) -> float:
        """Per-split tolerance in rows: |n_s − r_s·N| is strictly below this."""
        s = sum(1 for r in self.ratios if r > 0)
        return (s - 1) ** 2 / s * self.largest_unit

    def stratum_bound_rows(self) -> float:
        s = sum(1 for r in self.ratios if r > 0)
        return (s - 1) * self.largest_unit


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != len(SPLIT_NAMES):
        raise ValueError(f"ratios={','.join(map(str, ratios))}: give 3 numbers for train,val,test")
    if any(not np.isfinite(r) or r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"ratios={','.join(f'{r:g}' for r in ratios)}: need 3 numbers >= 0 summing to 1")
    return ratios


def _codes(values: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    """Non-null values as sorted unique strings and each row's code (-1 for null)."""
    text = np.array(["" if v is None else str(v) for v in values], dtype=object)
    present = np.array([v is not None for v in values], dtype=bool)
    codes = np.full(len(text), -1, dtype=np.int64)
    uniques, inverse = np.unique(text[present].astype(str), return_inverse=True)
    codes[present] = inverse
    return uniques, codes


def units(n: int, links: Sequence[Sequence[object]]) -> np.ndarray:
    """Per row, its connected component in the graph row — link value (a null links nothing)."""
    rows, cols, offset = [], [], n
    for column in links:
        uniques, codes = _codes(column)
        keep = codes >= 0
        rows.append(np.flatnonzero(keep))
        cols.append(offset + codes[keep])
        offset += len(uniques)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return np.unique(labels[:n], return_inverse=True)[1]


def assign(track_ids: Sequence[str], strata: Sequence[object], links: Sequence[Sequence[object]],
           ratios: Sequence[float], seed: int) -> Assignment:
    """Splits rows; `strata` is one key per row (None is a stratum of its own), `links` are
    columns whose equal non-null values must share a split."""
    ratios = check_ratios(ratios)
    ids = np.asarray(track_ids, dtype=str)
    n = len(ids)
    if n == 0:
        raise ValueError("no tracks to split")
    if len(np.unique(ids)) != n:
        raise ValueError("track ids repeat: a split assigns each track once")
    if any(len(column) != n for column in [strata, *links]):
        raise ValueError("strata and link columns need one value per track")

    # Units, renumbered by their smallest track id so that row order does not matter.
    raw = units(n, links)
    first = np.full(raw.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, raw, np.argsort(np.argsort(ids, kind="stable"), kind="stable"))
    unit = np.argsort(np.argsort(first, kind="stable"), kind="stable")[raw]
    n_units = len(first)
    sizes = np.bincount(unit, minlength=n_units)

    # Dominant stratum per unit: most rows, ties to the smallest stratum name.
    names, stratum = _codes(["\0none" if s is None else s for s in strata])
    k = max(len(names), 1)
    pairs, counts = np.unique(unit * k + stratum, return_counts=True)
    pair_unit, pair_stratum = pairs // k, pairs % k
    order = np.lexsort((pair_stratum, -counts, pair_unit))
    is_first = np.r_[True, pair_unit[order][1:] != pair_unit[order][:-1]]
    dominant = np.empty(n_units, dtype=np.int64)
    dominant[pair_unit[order][is_first]] = pair_stratum[order][is_first]

    rng = np.random.default_rng(seed)
    sequence = []
    for block in rng.permutation(k):
        members = np.flatnonzero(dominant == block)
        sequence.extend(members[rng.permutation(len(members))].tolist())

    # The walk: each unit to the split with the largest deficit against its running target.
    placed, filled = 0, [0] * len(ratios)
    unit_split = np.empty(n_units, dtype=np.int64)
    for u in sequence:
        size = int(sizes[u])
        target = placed + size
        # rounded so that equal ratios tie exactly and the tie goes to the earlier split
        best = max(range(len(ratios)), key=lambda s: (round(ratios[s] * target - filled[s], 9), -s))
        unit_split[u] = best
        filled[best] += size
        placed = target
    split = np.asarray(SPLIT_NAMES, dtype=object)[unit_split[unit]]
    return Assignment(split=split, unit=unit, unit_sizes=sizes, ratios=ratios)
