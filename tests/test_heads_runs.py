"""Runs: the run folder and the runs row, the train / runs / compare commands, and their SQL."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from heads import __main__ as train_cli
from heads import compare, probe, runs
from heads.record import run_part
from heads.testing import toy_lake
from lake import catalog, paths, queries
from lake.cli import UsageError
from lake.schemas import RUNS


def test_a_run_writes_its_folder_and_one_row(capsys):
    toy_lake(n=90)
    assert train_cli.main(["head=probe", "dataset=toy", "backbone=fake", "target=label", "epochs=50"]) == 0
    out = capsys.readouterr()
    assert "macro_f1" in out.out and "wrote " in out.err

    (row,) = catalog.connect().sql("SELECT * FROM runs").to_arrow_table().to_pylist()
    assert re.fullmatch(r"\d{8}T\d{6}Z-probe-[0-9a-f]{6}", row["run_id"])
    assert (row["head"], row["dataset"], row["backbones"], row["layer"], row["split_name"], row["target"]) == \
        ("probe", "toy", ["fake"], "last", "default", "label")
    assert run_part("toy", row["run_id"]).is_file()
    assert pq.read_schema(run_part("toy", row["run_id"])).remove_metadata() == RUNS
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", row["git_commit"])
    assert set(json.loads(row["packages"])) >= {"python", "torch", "numpy", "duckdb"}
    assert json.loads(row["config"])["epochs"] == 50 and len(row["data_fingerprint"]) == 64

    folder = paths.root() / row["path"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "confusion-test.png", "confusion-val.png", "metrics.json", "model.pt", "report.md"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics == json.loads(row["metrics"])
    assert set(metrics["test"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "per_class_accuracy", "confusion_matrix"}
    assert metrics["data"]["fingerprint"] == row["data_fingerprint"]
    checkpoint = torch.load(folder / "model.pt", weights_only=False)
    assert checkpoint["classes"] == ["c0", "c1", "c2"] and checkpoint["mean"].shape == (8,)
    assert {"model", "config", "best_epoch", "best_score", "scale", "layer"} <= set(checkpoint)
    report = (folder / "report.md").read_text()
    assert "## Per-class accuracy (recall)" in report and "![confusion-test.png](confusion-test.png)" in report


def test_the_checkpoint_alone_reproduces_the_test_metrics():
    from heads.train import train
    toy_lake(n=90)
    run = train("probe", dataset="toy", backbone="fake", target="label")
    checkpoint = torch.load(run.folder / "model.pt", weights_only=False)
    model = torch.nn.Linear(8, len(checkpoint["classes"]))
    model.load_state_dict(checkpoint["model"])
    test = run.data.part("test")
    X = run.data.features("last")[test]
    y = np.searchsorted(checkpoint["classes"], run.data.column("label")[test].astype(str))
    with torch.no_grad():
        pred = model((torch.from_numpy(X) - checkpoint["mean"]) / checkpoint["scale"]).argmax(1).numpy()
    assert (pred == y).mean() == pytest.approx(run.metrics["test"]["accuracy"])


@pytest.mark.parametrize("argv, message", [
    (["dataset=toy", "backbone=fake", "target=label"], "missing head=NAME"),
    (["head=nope", "dataset=toy"], "head='nope' is not a head"),
    (["head=probe", "dataset=toy", "backbone=fake", "target=label", "epoch=3"], "unknown key epoch="),
    (["head=probe", "dataset=toy", "backbone=fake", "target=label", "class_weight=auto"], "class_weight='auto'"),
    (["head=probe", "dataset=toy", "backbone=fake"], "missing target="),
])
def test_bad_command_lines_are_named(argv, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        train_cli.main(argv)


def test_a_bad_selection_is_one_line_and_exit_code_1(capsys):
    toy_lake(n=30)
    with pytest.raises(SystemExit) as exit_:
        train_cli.main(["head=probe", "dataset=toy", "backbone=fake", "target=label", "split=other"])
    assert exit_.value.code == 1
    assert "split='other' does not exist" in capsys.readouterr().err


# ---- the SQL, on rows built here -----------------------------------------------------------

def run_row(run_id, backbones, layer, target="label", minutes=0, test=True, seeds=1, layers=None, split="default"):
    scores = {"n": 10, "accuracy": 0.5 + minutes / 100, "balanced_accuracy": 0.4, "macro_f1": 0.3,
              "per_class_accuracy": {"neg": 0.25, "pos": 0.75}, "roc_auc": 0.6}
    metrics = {"val": scores, **({"test": scores} if test else {}), "seeds": {"values": list(range(seeds))},
               "headline": [m.spec() for m in probe.HEADLINE]}
    if seeds > 1:
        metrics["seeds"]["std"] = {"test": {"accuracy": 0.02, "per_class_accuracy": {"neg": 0.01, "pos": 0.03}}}
    if layers:
        metrics["layers"] = {str(i): {} for i in range(layers)}
    return {"run_id": run_id, "head": "probe", "dataset": "d", "backbones": backbones, "layer": layer,
            "split_name": split, "target": target, "config": "{}", "metrics": json.dumps(metrics), "packages": "{}",
            "git_commit": "abc", "data_fingerprint": "f", "path": f"runs/{run_id}",
            "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)}


def runs_con(rows) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("runs", pa.Table.from_pylist(rows, schema=RUNS))
    return con


def test_compare_takes_the_latest_run_per_backbone_and_layer():
    con = runs_con([
        run_row("r1", ["clap"], "last", minutes=0),
        run_row("r2", ["clap"], "last", minutes=5),                    # newer: replaces r1
        run_row("r3", ["muq", "campplus"], "last", minutes=1, test=False),  # fused; no test rows
        run_row("r4", ["mert"], "6", minutes=2, seeds=5, layers=13),
        run_row("r5", ["clap"], "last", target="affect_label", minutes=9),  # another target
    ])
    got = queries.run_file(con, "compare_backbones", dataset="d", head="probe", target="label",
                           split_name="").to_pylist()
    assert [(r["backbone"], r["layer"], r["run_id"], r["eval_split"]) for r in got] == [
        ("clap", "last", "r2", "test"), ("mert", "6", "r4", "test"), ("muq ⊕ campplus", "last", "r3", "val")]
    clap, mert, _fused = got
    for r in got:
        r["headline"], r["headline_std"] = dict(r["headline"] or []), dict(r["headline_std"] or [])
    assert clap["headline"]["accuracy"] == pytest.approx(0.55) and clap["headline"]["roc_auc"] == pytest.approx(0.6)
    assert clap["headline_std"] == {} and clap["layers_tried"] is None and clap["seeds"] == 1
    assert {k: v for k, v in clap["headline"].items() if k.startswith("per_class")} == {
        "per_class_accuracy[neg]": 0.25, "per_class_accuracy[pos]": 0.75}
    assert (mert["seeds"], mert["layers_tried"], mert["headline_std"]["accuracy"]) == (5, 13, pytest.approx(0.02))
    assert mert["headline_std"]["per_class_accuracy[pos]"] == pytest.approx(0.03)

    header, cells = compare.table(got)
    assert header == ["backbone", "layer", "on", "n", "seeds", "accuracy", "balanced acc", "macro-F1", "ROC-AUC",
                      "acc[neg]", "acc[pos]"]
    assert cells[1][:2] == ["mert", "6 (best of 13)"] and cells[1][5] == "0.5200 ± 0.0200"
    assert cells[0][5] == "**0.5500**"  # the best accuracy of the column
    assert cells[1][-1] == "0.7500 ± 0.0300"


def test_runs_query_filters_by_dataset_and_orders_newest_first():
    rows = [run_row("a", ["x"], "last", minutes=1), run_row("b", ["x", "y"], "last", minutes=3, seeds=2)]
    rows.append({**run_row("c", ["x"], "last", minutes=2), "dataset": "other"})
    con = runs_con(rows)
    got = queries.run_file(con, "runs", dataset="d").to_pylist()
    assert [(r["run_id"], r["backbones"], r["seeds"]) for r in got] == [("b", "x+y", 2), ("a", "x", 1)]
    assert [r["run_id"] for r in runs.select(con, "", "backbones = 'x'").to_pylist()] == ["c", "a"]
    with pytest.raises(UsageError, match="where='nope > 1': DuckDB says"):
        runs.select(con, "", "nope > 1")


def test_train_then_runs_then_compare_commands(capsys):
    toy_lake(n=90)
    for backbone in ("fake", "fake"):
        train_cli.main(["head=probe", "dataset=toy", f"backbone={backbone}", "target=label"])
    capsys.readouterr()
    assert runs.main(["dataset=toy", "where=head = 'probe'"]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert compare.main(["dataset=toy", "target=label", "format=md"]) == 0
    out = capsys.readouterr()
    assert out.out.count("| fake | last |") == 1 and "acc[c0]" in out.out
    written = paths.reports_dir("toy") / "compare-probe-label.md"
    assert written.read_text() == out.out and str(written) in out.err
    with pytest.raises(SystemExit):
        compare.main(["dataset=toy", "target=culture"])
    assert "no probe runs on toy for target=culture" in capsys.readouterr().err
