"""The head contract from the outside: a head written here, with its own metric, its own counts
and an artifact, goes through train, runs, compare and report.md without any of them knowing it."""
from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from heads import compare, registry, runs
from heads.data import Selection
from heads.protocol import Description, Inputs, Metric, Trained
from heads.testing import toy_lake
from heads.train import train


@dataclass
class WobblyConfig(Selection):
    target: str = "label"
    wobble_base: float = 0.25


class Wobbly:
    def __init__(self, base: float, seed: int) -> None:
        self.base, self.seed = base, seed

    def checkpoint(self) -> dict:
        return {"base": self.base, "seed": self.seed}


def wobbly_module() -> types.ModuleType:
    module = types.ModuleType("wobbly")
    module.Config = WobblyConfig
    module.HEADLINE = (Metric("wobble", "wobble factor", direction="min", format=".3f", short="wob"),)
    module.COUNTS = ("tally",)
    module.inputs = lambda cfg: Inputs(columns={"target": cfg.target}, required=("target",))
    module.describe = lambda cfg, data: Description(f"{len(set(data.column(cfg.target)))} labels", {"wobbly": True},
                                                    "## Wobbly\n\nall good\n")
    module.build = lambda cfg, seed, data: Wobbly(cfg.wobble_base, seed)

    def train_(cfg, data, seed):
        scores = {"n": int(data.part("test").sum()), "wobble": cfg.wobble_base + seed, "tally": [seed, 1],
                  "curve": [seed, seed + 0.5]}
        def write(path: Path) -> None:
            path.write_bytes(f"index of seed {seed}".encode())
        estimator = module.build(cfg, seed, data)
        return Trained(estimator, {"val": scores, "test": scores, "layer": data.layers[0]}, estimator.checkpoint(),
                       data.layers[0], artifacts={"index.bin": write})
    module.train = train_
    module.plots = lambda result, data, folder: []
    return module


@pytest.fixture
def wobbly(monkeypatch):
    module = wobbly_module()
    monkeypatch.setitem(sys.modules, "tests.wobbly_head", module)
    monkeypatch.setitem(registry.HEADS, "wobbly", "tests.wobbly_head")
    return module


def test_a_new_heads_metric_shows_in_runs_compare_and_the_report(wobbly, capsys):
    toy_lake(n=60)
    run = train("wobbly", dataset="toy", backbone="fake", seeds=2, seed=3)
    test = run.metrics["test"]
    assert test["wobble"] == pytest.approx(3.75) and run.metrics["seeds"]["std"]["test"]["wobble"] == pytest.approx(0.5)
    assert test["tally"] == [7, 2]            # declared a count: summed over the seeds
    assert test["curve"] == [3, 3.5]          # not a count: the first seed's
    assert run.metrics["data"]["wobbly"] is True and run.metrics["headline"][0]["name"] == "wobble"
    assert (run.folder / "index.bin").read_text() == "index of seed 3"
    assert (run.folder / "index-seed4.bin").read_text() == "index of seed 4"
    report = (run.folder / "report.md").read_text()
    assert "| wobble | 3.750 ± 0.500 | 3.750 ± 0.500 |" in report and "## Wobbly" in report

    assert runs.main(["dataset=toy", "where=wobble < 4"]) == 0
    out = capsys.readouterr().out
    assert "wob" in out and "3.750" in out
    listed = runs.select(runs.catalog.connect(), "toy").to_pylist()
    assert listed[0]["wobble"] == pytest.approx(3.75) and json.loads(listed[0]["declared"])[0]["label"] == "wobble factor"
    assert runs.select(runs.catalog.connect(), "toy", "wobble > 4").num_rows == 0

    train("wobbly", dataset="toy", backbone="fake", wobble_base=0.1)
    assert compare.main(["dataset=toy", "head=wobbly", "format=md"]) == 0
    table = capsys.readouterr().out
    assert "| backbone | layer | on | n | seeds | wobble factor |" in table
    assert "| fake | last | test | 12 | 1 | 0.100 |" in table  # the newest run of the backbone × layer


def test_an_artifact_name_the_folder_uses_is_refused(wobbly):
    toy_lake(n=30)
    original = wobbly.train

    def clashing(cfg, data, seed):
        trained = original(cfg, data, seed)
        trained.artifacts = {"metrics.json": trained.artifacts["index.bin"]}
        return trained
    wobbly.train = clashing
    with pytest.raises(ValueError, match="artifact 'metrics.json': a plain file name"):
        train("wobbly", dataset="toy", backbone="fake")
    assert not runs.paths.runs_dir().exists() or not list(runs.paths.runs_dir().iterdir())


def test_a_failing_artifact_leaves_no_half_file_and_no_row(wobbly):
    toy_lake(n=30)
    original = wobbly.train

    def failing(cfg, data, seed):
        trained = original(cfg, data, seed)

        def write(path: Path) -> None:
            path.write_bytes(b"half")
            raise OSError("disk full")
        trained.artifacts = {"index.bin": write}
        return trained
    wobbly.train = failing
    with pytest.raises(OSError, match="disk full"):
        train("wobbly", dataset="toy", backbone="fake")
    (folder,) = runs.paths.runs_dir().iterdir()
    assert not (folder / "index.bin").exists() and not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert runs.catalog.connect().execute("SELECT count(*) FROM runs").fetchone()[0] == 0
