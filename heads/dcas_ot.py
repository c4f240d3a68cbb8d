"""Entropic OT recommendation (seed 000): a user's history, with its interaction weights as mass,
is transported onto a target culture's tracks in `za` space; each candidate is scored by its
transport-conditioned cost (the mean cost of the mass that reaches it, lower is better).

Users are solved in batches with POT's batched log-domain Sinkhorn (`ot.batch.solve_batch`,
method="log_sinkhorn"): histories are padded to one length with zero mass, which the log-domain
iterations carry as −inf potentials (no transport to or from padding). Costs are squared
Euclidean distances divided by each user's median, so ε is relative to a typical cost and one ε suits
every backbone. An ε too small for the costs (the plan misses its marginals, or is not finite) is
raised ×10 until it is stable, with a note — never a NaN plan.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import ot
import ot.batch
import torch

MIN_EPSILON = 1e-3      # relative to the median cost: below this log-Sinkhorn rarely converges in max_iter
MARGINAL_TOL = 1e-3     # largest |plan row sum − a| (relative to the mass) accepted as converged
# Sinkhorn stops when no dual potential (log domain) moves by more than this: 1e-5 keeps the
# marginals far inside MARGINAL_TOL; 1e-7 only added iterations that change no ranking
DUAL_TOL = 1e-5


@dataclass
class Transport:
    plans: np.ndarray            # [users, history, candidates]
    epsilon: float               # the ε actually used
    notes: list[str] = field(default_factory=list)


def squared_costs(sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[B, H, d] × [T, d] → [B, H, T] squared Euclidean distances (never negative)."""
    cross = sources @ targets.T
    costs = (sources ** 2).sum(-1)[..., None] + (targets ** 2).sum(-1)[None, None, :] - 2 * cross
    return np.maximum(costs, 0.0)


def _solve(costs: np.ndarray, a: np.ndarray, b: np.ndarray, epsilon: float, max_iter: int, tol: float) -> np.ndarray:
    # POT's torch backend: float32 log-sum-exp runs about twice as fast as its numpy one here
    as_torch = [torch.from_numpy(np.ascontiguousarray(v)).float() for v in (costs, a, b)]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # POT warns on log(0) of padding and on non-convergence; we check
        plan = ot.batch.solve_batch(as_torch[0], reg=epsilon, a=as_torch[1], b=as_torch[2], method="log_sinkhorn",
                                    max_iter=max_iter, tol=tol).plan
    return plan.numpy()   # float32: the plans are as big as the costs, users × history × candidates


def _stable(plans: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    if not np.isfinite(plans).all():
        return False
    return bool(np.abs(plans.sum(2) - a).max() < MARGINAL_TOL and np.abs(plans.sum(1) - b).max() < MARGINAL_TOL)


def transport(history: np.ndarray, mass: np.ndarray, candidates: np.ndarray, epsilon: float,
              max_iter: int = 500, costs: np.ndarray | None = None, tol: float = DUAL_TOL) -> Transport:
    """history [B, H, d] (padded), mass [B, H] (0 on padding, each row summing to 1), candidates
    [T, d] with uniform mass: the entropic plans, ε raised until stable. `costs`: the squared
    distances when the caller has them already (they are the biggest array here)."""
    costs = squared_costs(history, candidates) if costs is None else costs
    real = np.where(np.broadcast_to(mass[..., None] > 0, costs.shape), costs, np.nan)
    scale = np.nanmedian(real.reshape(len(costs), -1), axis=1)       # per user: ε means the same for everyone
    costs = costs / np.where(scale > 0, scale, 1.0).astype(costs.dtype)[:, None, None]
    a = mass / mass.sum(1, keepdims=True)
    b = np.full((len(history), len(candidates)), 1.0 / len(candidates))
    notes = []
    if epsilon < MIN_EPSILON:
        notes.append(f"ot_epsilon={epsilon:g} is below {MIN_EPSILON:g} of the median cost: raised to {MIN_EPSILON:g}")
        epsilon = MIN_EPSILON
    while True:
        plans = _solve(costs, a, b, epsilon, max_iter, tol)
        if _stable(plans, a, b) or epsilon >= 10.0:
            break
        notes.append(f"OT with ε={epsilon:g} missed its marginals in {max_iter} iterations: raised to {epsilon * 10:g}")
        epsilon *= 10
    plans = np.nan_to_num(plans, nan=0.0, posinf=0.0, neginf=0.0)
    return Transport(plans, epsilon, notes)


def conditioned_cost(plans: np.ndarray, history: np.ndarray, candidates: np.ndarray,
                     costs: np.ndarray | None = None) -> np.ndarray:
    """[B, T]: Σ_h P[h,t]·C[h,t] / Σ_h P[h,t] — the cost of the history mass a candidate receives."""
    costs = squared_costs(history, candidates) if costs is None else costs
    received = plans.sum(1)
    return (plans * costs).sum(1) / np.maximum(received, 1e-300)


def knn_cost(history: np.ndarray, mass: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """[B, T]: the kNN variant (and ablate=ot): the history-weighted mean distance to each candidate."""
    costs = squared_costs(history, candidates)
    weights = mass / mass.sum(1, keepdims=True)
    return (weights[..., None] * costs).sum(1)


def padded(groups: list[np.ndarray], weights: list[np.ndarray], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-user histories (track rows, weights) → [B, H, d] vectors and [B, H] mass, zero-padded."""
    length = max(len(g) for g in groups)
    out = np.zeros((len(groups), length, vectors.shape[1]), dtype=np.float32)  # costs follow: half the memory
    mass = np.zeros((len(groups), length))
    for i, (rows, w) in enumerate(zip(groups, weights)):
        out[i, :len(rows)] = vectors[rows]
        mass[i, :len(rows)] = w
    return out, mass
