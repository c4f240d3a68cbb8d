"""What a head is: two small protocols, no base classes.

A head is one module `heads/<name>.py`, registered in `heads/registry.py`, that provides:

* `Config` — a dataclass whose fields are the selection (`heads.data.Selection`, which it
  subclasses) plus the head's hyperparameters; `just train head=<name> key=value ...` parses
  into it, so an unknown key or a bad value is rejected by name.
* an estimator class (the `Estimator` protocol): the constructor stores hyperparameters only,
  `fit(X, y, X_val, y_val)` learns and returns self, learned state ends in `_`, `evaluate(X, y)`
  returns a dict of metrics, `checkpoint()` returns a plain dict for `model.pt`.
* `train(cfg, data, seed) -> Trained` — fits one seed on a loaded selection (`heads.data.Data`),
  choosing among `data.layers` on val when there are several, and evaluates on val and test.
* `plots(metrics, data, folder) -> list[Path]` — the run's figures, drawn from its metrics.

`heads.train` does the rest for every head: loading, seeds, the run folder and the runs row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Estimator(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> Estimator: ...

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> dict[str, Any]: ...

    def checkpoint(self) -> dict[str, Any]: ...


@dataclass
class Trained:
    """One seed's outcome: metrics go to metrics.json and the runs row, the checkpoint to model.pt."""
    estimator: Estimator
    metrics: dict[str, Any]      # {"val": {...}, "test": {...}, "layer": ..., head-specific extras}
    checkpoint: dict[str, Any]
    layer: str                   # the layer entry the reported metrics come from
    notes: list[str] = field(default_factory=list)  # lines for report.md


class HeadModule(Protocol):
    Config: type

    def train(self, cfg: Any, data: Any, seed: int) -> Trained: ...

    def plots(self, metrics: dict[str, Any], data: Any, folder: Path) -> list[Path]: ...
