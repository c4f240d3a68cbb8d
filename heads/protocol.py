"""What a head is: one module `heads/<name>.py`, listed in `heads/registry.py`. No base classes.

`heads.train` does everything that is the same for every head: it parses the command line
into the head's `Config`, loads the selection once (`heads.data.load`), fits each seed, and
records ONE run (`heads.record`: the run folder and its `runs` row; `heads.report`: report.md).
`just runs`, `just compare` and report.md show the metrics the head declares in `HEADLINE`.
What it needs from the module, all of it:

    Config                 dataclass subclassing `heads.data.Selection` (dataset, backbone, target,
                           split, layer, where, select, seed, seeds) plus the head's own keys;
                           `just train head=<name> key=value ...` parses into it, so an unknown key
                           or a bad value is refused by name. `target` is what the run predicts
                           (the runs row's `target`); `variant` (a property) names what tells two
                           runs on the same data apart in `just compare` ("" when nothing does).
    HEADLINE               tuple[Metric, ...]: the metrics runs/compare/report show, in order.
    COUNTS                 tuple[str, ...]: metric keys holding counts (a confusion matrix), which
                           add up over seeds; every other list is per seed (curves, per-item arrays).
    inputs(cfg) -> Inputs  the `tracks` columns (and extra backbones) the head reads.
    describe(cfg, data) -> Description
                           once, before any seed: encodes and checks the head's targets (a
                           `heads.data.SelectionError` for data it cannot learn from) and says what
                           the data holds for the console, metrics.json and report.md.
    build(cfg, seed, data) -> estimator
                           the unfitted estimator: the constructor stores hyperparameters and the
                           data's vocabulary (class names ...) only, learned state ends in `_`
                           (a test checks), `checkpoint()` returns a plain dict for model.pt.
    train(cfg, data, seed) -> Trained
                           fits one seed (through `build`), choosing among `data.layers` on val when
                           there are several, and evaluates on val and test (test only when the
                           split has test rows).
    plots(result, data, folder) -> list[Path]
                           the run's figures, drawn from its (seed-aggregated) metrics.

Artifacts: a head leaves files besides model.pt (an index, adapters, rows for a lake table)
through `Trained.artifacts`: {file name: writer}, where `writer(path)` writes the file at
`path`. `heads.record` hands each writer a temporary path in the run folder and renames it
into place when the writer returns, so a crash never leaves half a file; seed S of a multi-seed
run gets `<stem>-seed<S><suffix>`, as its checkpoint gets `model-seed<S>.pt`. Names are plain
file names that the run folder does not already use (config.json, metrics.json, report.md,
model*.pt, the plots); a name ending in "/" is a folder (lora's `adapter/`): its writer fills a
temporary directory that is renamed into place. A head that trains on raw audio rather than stored
vectors provides `load_data(cfg, inputs) -> Data` (heads.data.load_audio), used instead of
`heads.data.load`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

RESERVED_FILES = ("config.json", "metrics.json", "report.md")
_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Metric:
    """A headline metric: where it is in metrics[part], how it is shown and which way is better."""
    name: str                                  # key in metrics["val"] / metrics["test"]
    label: str                                 # column header, e.g. "macro-F1"
    direction: Literal["max", "min", "none"] = "max"  # higher or lower is better (compare marks the best)
    format: str = ".4f"                        # format spec of the value and its std
    short: str = ""                            # header where space is tight (terminal); default label
    per_key: bool = False                      # the value is {key: number}: one column per key, label[key]
    about: str = ""                            # one line under a table that shows it

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"metric name {self.name!r}: lower-case letters, digits and _ only")
        format(0.5, self.format)  # a bad format spec fails at import, not in a report

    def spec(self) -> dict[str, Any]:
        """What the runs row records (metrics.headline), so SQL and old runs need no Python."""
        return {"name": self.name, "label": self.label, "direction": self.direction, "format": self.format,
                "short": self.short or self.label, "per_key": self.per_key, "about": self.about}


@dataclass(frozen=True)
class Inputs:
    """What a head reads besides its fused features: `tracks` columns by the config key naming
    them (so errors say `target=genre ...`), the keys whose column must not be NULL (such rows
    are dropped and counted), and other backbones' vectors (e.g. a speaker encoder to adversary)."""
    columns: dict[str, str] = field(default_factory=dict)   # config key → tracks column
    required: tuple[str, ...] = ()                           # keys of `columns`
    backbones: tuple[str, ...] = ()                          # stored backbone names, default layer


@dataclass
class Description:
    """What a head makes of the loaded data, said once per run."""
    line: str = ""                                      # the console: "4 classes of label"
    facts: dict[str, Any] = field(default_factory=dict)  # metrics.json "data" (JSON values)
    report: str = ""                                    # a Markdown section for report.md


Writer = Callable[[Path], Any]


@dataclass
class Trained:
    """One seed's outcome: metrics go to metrics.json and the runs row, the checkpoint to model.pt,
    each artifact to its own file (see the module docstring)."""
    estimator: Any
    metrics: dict[str, Any]      # {"val": {...}, "test": {...}, "layer": ..., head-specific extras}
    checkpoint: dict[str, Any]
    layer: str                   # the layer entry the reported metrics come from
    notes: list[str] = field(default_factory=list)  # lines for report.md
    artifacts: dict[str, Writer] = field(default_factory=dict)


def check_artifact_name(name: str, taken: set[str]) -> str:
    """A plain file name, or a folder's name ending in "/" (its writer fills a directory)."""
    if (not name or Path(name).name != name.removesuffix("/") or name.startswith(".") or name in RESERVED_FILES
            or name in taken or re.fullmatch(r"model(-seed-?\d+)?\.pt", name)):
        raise ValueError(f"artifact {name!r}: a plain file name that the run folder does not already use")
    return name


def seed_file_name(name: str, seed: int) -> str:
    """`index.faiss` of seed 3 → `index-seed3.faiss`."""
    path = Path(name)
    return f"{path.stem}-seed{seed}{path.suffix}"


class HeadModule(Protocol):
    Config: type
    HEADLINE: tuple[Metric, ...]
    COUNTS: tuple[str, ...]

    def inputs(self, cfg: Any) -> Inputs: ...

    def describe(self, cfg: Any, data: Any) -> Description: ...

    def build(self, cfg: Any, seed: int, data: Any) -> Any: ...

    def train(self, cfg: Any, data: Any, seed: int) -> Trained: ...

    def plots(self, result: dict[str, Any], data: Any, folder: Path) -> list[Path]: ...
