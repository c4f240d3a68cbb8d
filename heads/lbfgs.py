"""Full-batch L-BFGS for heads, and keeping CPU thread pools out of each other's way.

`minimize` drives scipy's L-BFGS-B over a torch model's parameters with a per-iteration
callback (early stopping lives there); `linear_objective` is the linear probe's loss and
gradient in closed form, `torch_objective` any model's by autograd.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from scipy import optimize
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]

# Below this many feature values a probe trains on one thread: tiny ops gain nothing from two,
# and on a busy machine each parallel region can stall for tens of ms (measured: 48 ms vs
# 0.14 ms per step of a 90 x 8 probe with 2 threads at load 4 on 2 cores).
SMALL = 1_000_000


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def quiet_scipy_blas() -> Iterator[None]:
    """One thread for scipy's own BLAS while its L-BFGS-B runs.

    The pip wheels of scipy and numpy each bundle an OpenBLAS. L-BFGS-B's small updates wake
    scipy's thread pool, whose idle workers then spin on the cores numpy's matmuls need: the
    loss+gradient went from 85 to 140 ms per call after the first iteration (measured, 100k x
    768, 2 cores). threadpoolctl (a scikit-learn dependency) caps that pool meanwhile; a BLAS
    shared by both (conda) lives outside scipy's folder and is left alone.
    """
    import scipy
    from threadpoolctl import ThreadpoolController

    home = Path(scipy.__file__).resolve().parent
    ours = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas" and (
        Path(c.filepath).resolve().parent.name == f"{home.name}.libs" or home in Path(c.filepath).resolve().parents)]
    saved = [c.num_threads for c in ours]
    for controller in ours:
        controller.set_num_threads(1)
    try:
        yield
    finally:
        for controller, n in zip(ours, saved):
            controller.set_num_threads(n)


def linear_objective(X: np.ndarray, y: np.ndarray, class_weight: np.ndarray, weight_decay: float,
                     chunk: int = 2048) -> Objective:
    """The linear probe's loss and gradient at θ = [W (k×d, row-major), b (k)], nn.Linear's layout:
    class-weighted mean softmax cross-entropy (torch's CrossEntropyLoss(weight=...)) + λ/2·‖W‖².

    Closed form in numpy rather than torch autograd, for speed: the two skinny matmuls over X
    (X·Wᵀ and Gᵀ·X) are nearly all the cost, and numpy's OpenBLAS runs them 2x faster than the
    MKL inside torch's CPU wheel on AMD CPUs (41+33 ms vs 80+69 ms for 100k x 768 float32,
    measured here). Rows go in chunks of `chunk` so each chunk of X is read from memory once and
    from cache for the gradient (-22% time). A test checks the result against autograd.
    """
    n, d = X.shape
    k = len(class_weight)
    w = class_weight.astype(np.float32)[y]
    w /= w.sum()
    starts = range(0, n, chunk)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[:k * d].reshape(k, d).astype(np.float32)
        b = theta[k * d:].astype(np.float32)
        grad_W, grad_b, loss = weight_decay * W, np.zeros(k, np.float32), 0.5 * weight_decay * float(np.sum(W * W))
        for start in starts:
            Xc, yc, wc = X[start:start + chunk], y[start:start + chunk], w[start:start + chunk]
            rows = np.arange(len(yc))
            z = Xc @ W.T
            z += b
            z -= z.max(axis=1, keepdims=True)  # stable softmax
            true_logit = z[rows, yc]
            np.exp(z, out=z)
            total = z.sum(axis=1, keepdims=True)
            loss -= float(np.dot(wc, true_logit - np.log(total[:, 0])))  # log-softmax: no log(0)
            z /= total                         # probabilities
            z[rows, yc] -= 1.0                 # ∂loss/∂logits per row, then weighted
            z *= wc[:, None]
            grad_W += z.T @ Xc
            grad_b += z.sum(axis=0)
        return loss, np.concatenate([grad_W.ravel(), grad_b]).astype(np.float64)
    return objective


def torch_objective(model: nn.Module, loss: Callable[[], torch.Tensor], weight_decay: float) -> Objective:
    """Loss + λ/2·‖W‖² on the weights (not biases) and its gradient, by autograd (the MLP)."""
    params = list(model.parameters())
    decayed = [p for name, p in model.named_parameters() if name.endswith("weight")]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        vector_to_parameters(torch.from_numpy(theta.astype(np.float32)), params)
        model.zero_grad()
        value = loss()
        if weight_decay:
            value = value + 0.5 * weight_decay * sum((p * p).sum() for p in decayed)
        value.backward()
        return float(value.detach()), parameters_to_vector([p.grad for p in params]).double().numpy()
    return objective


def minimize(model: nn.Module, objective: Objective, end_of_epoch: Callable[[float], bool], max_iter: int) -> None:
    """Full-batch L-BFGS by scipy, as scikit-learn's lbfgs: about one loss+gradient per
    iteration, where torch.optim.LBFGS spends two or more. After each iteration the model
    holds the accepted point and `end_of_epoch(train loss)` runs; True stops."""
    params = list(model.parameters())

    def callback(intermediate_result: optimize.OptimizeResult) -> None:
        # the accepted point, not the last line-search trial, is what val scores
        vector_to_parameters(torch.from_numpy(intermediate_result.x.astype(np.float32)), params)
        if end_of_epoch(float(intermediate_result.fun)):
            raise StopIteration

    theta = parameters_to_vector(params).detach().double().numpy()
    with quiet_scipy_blas():
        optimize.minimize(objective, theta, jac=True, method="L-BFGS-B", callback=callback,
                          options={"maxiter": max_iter, "maxls": 50, "gtol": 1e-4,
                                   "ftol": 64 * np.finfo(float).eps})

