"""The probe head: a linear classifier (or a one-hidden-layer MLP) on frozen embeddings.

    just train head=probe dataset=eatd backbone=clap target=affect_label
    just train head=probe dataset=gtzan backbone=mert-v1-95m layer=all target=label seeds=5

Seed 002's protocol, made explicit: features standardised with train statistics only; the loss
weighted by inverse class frequency (`class_weight=balanced`: EATD is ~20% depressed, and an
unweighted probe learns to say "not depressed"); early stopping on val (`monitor=macro_f1`,
ties broken by val loss, or `monitor=loss`) with `patience` epochs; `layer=all` fits one probe per
stored layer and keeps the one best on val (MERT's best layer differs per task).

The linear probe trains full-batch with L-BFGS (scipy's, as scikit-learn's lbfgs; an "epoch"
is one L-BFGS iteration over all of train): convex, no learning rate to tune. Its loss and
gradient are computed in closed form with numpy (`linear_objective`, checked against torch
autograd) for speed, and the model is an nn.Linear: the checkpoint is a torch state dict.
`weight_decay` is then an L2 penalty λ/2·‖W‖² on the weights added to the mean loss
(scikit-learn's C is 1/(λ·n)). `hidden=N` trains with minibatch AdamW (decoupled weight decay).
bench/heads.py times it against scikit-learn's LogisticRegression on 100k x 768.

Initial weights and batch order are seeded, and the CPU kernels used (BLAS matmuls, softmax,
ReLU, dropout) are deterministic for a fixed thread count, so a rerun gives identical metrics
(tests/test_heads_probe.py). `torch.use_deterministic_algorithms` is not switched on: it
changes nothing for these CPU ops and costs 2 s of imports.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from heads import lbfgs, metrics
from heads.data import Data, Selection, SelectionError
from heads.protocol import Description, Inputs, Metric, Trained


@dataclass
class Config(Selection):
    hidden: int = 0                  # 0: linear; N: one hidden layer of N units (ReLU)
    dropout: float = 0.0             # before the output layer of the MLP
    epochs: int = 100                # most epochs (linear: L-BFGS iterations)
    lr: float = 1e-3                 # AdamW's learning rate (L-BFGS takes line-search steps)
    weight_decay: float = 1e-4
    batch_size: int = 256            # AdamW minibatch; L-BFGS is full-batch
    patience: int = 10               # epochs without a better val score before stopping
    class_weight: Literal["balanced", "none"] = "balanced"
    optimizer: Literal["auto", "lbfgs", "adamw"] = "auto"  # auto: lbfgs when linear, adamw with hidden=
    monitor: Literal["macro_f1", "loss"] = "macro_f1"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.target:
            raise ValueError("missing target=: the tracks column to classify, e.g. target=label")
        # written as `not (x >= ...)` so that NaN, which fails every comparison, is refused too
        for key in ("epochs", "batch_size"):
            if not getattr(self, key) >= 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be 1 or more")
        if not (self.hidden >= 0 and self.patience >= 1 and 0 <= self.dropout < 1 and self.weight_decay >= 0):
            raise ValueError("hidden ≥ 0, patience ≥ 1, 0 ≤ dropout < 1 and weight_decay ≥ 0 are required")
        if not (self.lr > 0 and math.isfinite(self.lr)) or not math.isfinite(self.weight_decay):
            raise ValueError(f"lr={self.lr}, weight_decay={self.weight_decay}: must be finite, lr positive")


HEADLINE = (
    Metric("accuracy", "accuracy", short="acc"),
    Metric("balanced_accuracy", "balanced acc", short="bal acc"),
    Metric("macro_f1", "macro-F1", short="F1"),
    Metric("roc_auc", "ROC-AUC", short="AUC"),
    Metric("per_class_accuracy", "per-class accuracy (recall)", short="acc", per_key=True, about="a column per class: that class's accuracy (recall)"),
)
COUNTS = ("confusion_matrix",)
NOT_CATEGORIES = ("FLOAT", "DOUBLE", "DECIMAL", "[]", "STRUCT", "MAP")


HYPERPARAMETERS = ("hidden", "dropout", "epochs", "lr", "weight_decay", "batch_size", "patience",
                   "class_weight", "optimizer", "monitor")


class Probe:
    """Estimator: `Probe(**hyperparameters).fit(X, y, X_val, y_val).evaluate(X_test, y_test)`."""

    def __init__(self, hidden: int = 0, dropout: float = 0.0, epochs: int = 100, lr: float = 1e-3,
                 weight_decay: float = 1e-4, batch_size: int = 256, patience: int = 10,
                 class_weight: str = "balanced", optimizer: str = "auto", monitor: str = "macro_f1",
                 seed: int = 0, class_names: list[str] | None = None) -> None:
        self.hidden, self.dropout, self.epochs, self.lr = hidden, dropout, epochs, lr
        self.weight_decay, self.batch_size, self.patience = weight_decay, batch_size, patience
        self.class_weight, self.optimizer, self.monitor = class_weight, optimizer, monitor
        self.seed, self.class_names = seed, class_names

    # ---- training ------------------------------------------------------------------------

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        out = np.subtract(X, self.mean_, dtype=np.float32)  # one new array, then in place
        out /= self.scale_
        return out

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> Probe:
        self.classes_ = np.unique(y)
        k = len(self.classes_)
        if not np.isin(y_val, self.classes_).all():
            raise ValueError(f"y_val has classes that y lacks: {sorted(set(np.unique(y_val)) - set(self.classes_))}")
        # Train statistics only: val and test are scaled with what train saw.
        self.mean_ = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = np.subtract(X, self.mean_, dtype=np.float32)
        std = np.sqrt(np.einsum("ij,ij->j", centred, centred, dtype=np.float64) / len(X)).astype(np.float32)
        self.scale_ = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        X_train = centred
        X_train /= self.scale_  # in place: a 100k x 768 matrix is standardised with one copy
        torch.manual_seed(self.seed)  # the initial weights; AdamW's batch order has its own generator
        # torch only scores val for the linear L-BFGS probe (numpy does the heavy part): with one
        # torch thread its idle OpenMP workers cannot spin against OpenBLAS's for the same cores.
        numpy_heavy = not self.hidden and self.optimizer in ("auto", "lbfgs")
        with lbfgs.torch_threads(1 if X.size < lbfgs.SMALL or numpy_heavy else torch.get_num_threads()):
            self._fit(torch.from_numpy(X_train), torch.from_numpy(np.searchsorted(self.classes_, y)),
                      torch.from_numpy(self._standardise(X_val)),
                      torch.from_numpy(np.searchsorted(self.classes_, y_val)), k)
        return self

    def _fit(self, X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor, k: int) -> None:
        d = X.shape[1]
        model = (nn.Linear(d, k) if not self.hidden else
                 nn.Sequential(nn.Linear(d, self.hidden), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, k)))
        counts = torch.bincount(y, minlength=k).float()
        # balanced: each class carries the same total weight, n / (k · count), as in scikit-learn
        weight = len(y) / (k * counts) if self.class_weight == "balanced" else torch.ones(k)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        kind = self.optimizer if self.optimizer != "auto" else ("adamw" if self.hidden else "lbfgs")
        self.history_: list[dict[str, float]] = []
        best: dict[str, Any] = {}

        def end_of_epoch(train_loss: float) -> bool:
            """Scores val, keeps the best weights; True when `patience` epochs brought nothing better."""
            epoch = len(self.history_) + 1
            model.eval()
            with torch.no_grad():
                if self.hidden:
                    logits = model(X_val)
                else:  # numpy's BLAS, as in linear_objective
                    logits = torch.from_numpy(X_val.numpy() @ model.weight.numpy().T + model.bias.numpy())
                val_loss = float(loss_fn(logits, y_val))
            model.train()
            f1 = metrics.macro_f1(y_val.numpy(), logits.argmax(1).numpy(), k)
            self.history_.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_macro_f1": f1})
            key = (f1, -val_loss) if self.monitor == "macro_f1" else (-val_loss,)
            if not best or key > best["key"]:
                best.update(key=key, state=copy.deepcopy(model.state_dict()), epoch=epoch,
                            score={"val_macro_f1": f1, "val_loss": val_loss})
            return epoch - best["epoch"] >= self.patience

        model.train()
        if kind == "lbfgs" and not self.hidden:
            objective = lbfgs.linear_objective(X.numpy(), y.numpy(), weight.numpy(), self.weight_decay)
            lbfgs.minimize(model, objective, end_of_epoch, self.epochs)
        elif kind == "lbfgs":
            objective = lbfgs.torch_objective(model, lambda: loss_fn(model(X), y), self.weight_decay)
            lbfgs.minimize(model, objective, end_of_epoch, self.epochs)
        else:
            self._adamw(model, X, y, loss_fn, end_of_epoch)
        model.load_state_dict(best["state"])
        model.eval()
        self.model_, self.best_epoch_, self.best_score_ = model, best["epoch"], best["score"]
        self.epochs_run_ = len(self.history_)

    def _adamw(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module,
               end_of_epoch: Callable[[float], bool]) -> None:
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        order = torch.Generator().manual_seed(self.seed)
        for _epoch in range(self.epochs):
            total = 0.0
            for batch in torch.randperm(len(y), generator=order).split(self.batch_size):
                opt.zero_grad()
                loss = loss_fn(model(X[batch]), y[batch])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            if end_of_epoch(total / len(y)):
                return

    # ---- using it ------------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model_(torch.from_numpy(self._standardise(X))), dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        names = self.class_names or [str(c) for c in self.classes_]
        return metrics.classification(np.searchsorted(self.classes_, y), self.predict_proba(X), names)

    def checkpoint(self) -> dict[str, Any]:
        """A plain dict: everything needed to rebuild and use the probe without this code's state."""
        return {
            "model": self.model_.state_dict(),
            "hyperparameters": {k: getattr(self, k) for k in (*HYPERPARAMETERS, "seed")},
            "classes": list(self.class_names or self.classes_.tolist()),
            "mean": torch.from_numpy(self.mean_), "scale": torch.from_numpy(self.scale_),
            "best_epoch": self.best_epoch_, "best_score": self.best_score_, "epochs_run": self.epochs_run_,
        }


def inputs(cfg: Config) -> Inputs:
    return Inputs(columns={"target": cfg.target}, required=("target",))


def encode(cfg: Config, data: Data) -> tuple[np.ndarray, list[str]]:
    """Class codes of the target (its values as text, classes sorted by name); every class must
    occur in train, and there must be two or more."""
    key = ("probe.encode", cfg.target)
    if key in data.memo:  # layer=all and seeds= encode once
        return data.memo[key]
    kind = data.types[cfg.target]
    if any(k in kind for k in NOT_CATEGORIES):
        raise SelectionError(f"target={cfg.target} is {kind}, not categories: a classifier needs a "
                             "text or integer column (bin a score into a new column first)")
    values = data.column(cfg.target).astype(str)
    classes, y = np.unique(values, return_inverse=True)
    in_train = np.unique(y[data.part("train")])
    missing = [str(classes[i]) for i in range(len(classes)) if i not in in_train]
    if missing:
        where = ", ".join(f"{c} ({', '.join(sorted(set(data.split[values == c])))})" for c in missing[:5])
        raise SelectionError(f"target={cfg.target}: class(es) missing from train: {where}; a head cannot learn a "
                             "class it never sees: change the split or narrow the selection with where=")
    if len(classes) < 2:
        raise SelectionError(f"target={cfg.target}: only one class ({classes[0]}) in the selection; need two or more")
    data.memo[key] = y.astype(np.int64), [str(c) for c in classes]
    return data.memo[key]


def describe(cfg: Config, data: Data) -> Description:
    y, classes = encode(cfg, data)
    per_class = {p: {c: int(np.sum(data.part(p) & (y == i))) for i, c in enumerate(classes)} for p in data.parts()}
    table = ["| split | " + " | ".join(classes) + " |", "|:---|" + "---:|" * len(classes)]
    table += [f"| {p} | " + " | ".join(str(n) for n in c.values()) + " |" for p, c in per_class.items()]
    return Description(line=f"{len(classes)} classes of {cfg.target}",
                       facts={"classes": classes, "rows_per_class": per_class},
                       report="\n".join(["## Rows per class", "", *table, ""]))


def build(cfg: Config, seed: int, data: Data) -> Probe:
    return Probe(**{k: getattr(cfg, k) for k in HYPERPARAMETERS}, seed=seed, class_names=encode(cfg, data)[1])


def train(cfg: Config, data: Data, seed: int) -> Trained:
    """One probe per entry of `data.layers` (several with layer=all); the best on val is reported."""
    y, _classes = encode(cfg, data)
    fitted: dict[str, Probe] = {}
    train_rows, val_rows = data.part("train"), data.part("val")
    for layer in data.layers:
        X = data.features(layer)
        fitted[layer] = build(cfg, seed, data).fit(X[train_rows], y[train_rows], X[val_rows], y[val_rows])
    monitor = (lambda p: (p.best_score_["val_macro_f1"], -p.best_score_["val_loss"])) if cfg.monitor == "macro_f1" \
        else (lambda p: -p.best_score_["val_loss"])
    layer = max(data.layers, key=lambda name: monitor(fitted[name]))  # first of equals: stored order
    probe = fitted[layer]
    out: dict[str, Any] = {"layer": layer, "best_epoch": probe.best_epoch_, "epochs_run": probe.epochs_run_}
    for part in data.parts():
        if part != "train":
            rows = data.part(part)
            out[part] = probe.evaluate(data.features(layer)[rows], y[rows])
    notes = []
    if len(data.layers) > 1:
        out["layers"] = {name: {"val_macro_f1": p.best_score_["val_macro_f1"], "val_loss": p.best_score_["val_loss"]}
                         for name, p in fitted.items()}
        notes.append(f"layer=all: {len(data.layers)} layers probed; {layer} is best on val")
    checkpoint = {**probe.checkpoint(), "config": asdict(cfg), "layer": layer}
    return Trained(probe, out, checkpoint, layer, notes)


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    written = []
    for part in ("val", "test"):
        if part in result:
            n = len(result.get("seeds", {}).get("values", []))
            title = (f"{'+'.join(data.selection.backbone)} · {result['layer']} · {data.selection.target} · {part}"
                     + (f" · summed over {n} seeds" if n > 1 else ""))
            written.append(metrics.confusion_png(result[part]["confusion_matrix"], result["data"]["classes"],
                                                 folder / f"confusion-{part}.png", title))
    return written
