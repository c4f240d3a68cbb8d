"""The probe head: agreement with scikit-learn, determinism, layer=all, and the head registry."""
from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import heads
from heads import lbfgs, playlist_demo, probe
from heads.metrics import aggregate, classification, macro_f1
from heads.data import load
from heads.protocol import Metric
from heads.registry import HEADS
from heads.testing import (
    clusters,
    toy_lake,
    write_embeddings,
    write_split,
    write_tracks,
)
from heads.train import train
from lake.cli import UsageError, parse_config


def standardised(n_train=3000, n_val=600, n_test=2000, dim=32, classes=4, separation=0.35):
    X, y = clusters(n_train + n_val + n_test, dim, classes, separation, seed=1)
    mean, std = X[:n_train].mean(axis=0), X[:n_train].std(axis=0)
    X = (X - mean) / std
    a, b = n_train, n_train + n_val
    return X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:]


def test_linear_probe_agrees_with_sklearn_logistic_regression():
    X, y, X_val, y_val, X_test, y_test = standardised()
    ours = probe.Probe(class_weight="none", weight_decay=1.0 / len(y)).fit(X, y, X_val, y_val)
    theirs = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    ours_acc = ours.evaluate(X_test, y_test)["accuracy"]
    theirs_acc = theirs.score(X_test, y_test)
    assert 0.6 < theirs_acc < 0.95  # a problem where the two could disagree
    assert abs(ours_acc - theirs_acc) <= 0.01
    assert np.mean(ours.predict(X_test) == theirs.predict(X_test)) > 0.95


def test_the_numpy_loss_and_gradient_match_torch_autograd():
    X, y = clusters(5000, 12, 3, separation=1.0, seed=2)  # > one chunk of rows
    class_weight = np.array([0.5, 1.0, 2.0], np.float32)
    theta = np.random.default_rng(0).standard_normal(3 * 12 + 3)
    loss, grad = lbfgs.linear_objective(X, y, class_weight, weight_decay=0.1)(theta)

    model = torch.nn.Linear(12, 3)
    torch.nn.utils.vector_to_parameters(torch.from_numpy(theta.astype(np.float32)), model.parameters())
    expected = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(class_weight))(model(torch.from_numpy(X)),
                                                                                torch.from_numpy(y))
    expected = expected + 0.05 * (model.weight ** 2).sum()
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-5)
    autograd = torch.cat([model.weight.grad.ravel(), model.bias.grad]).numpy()
    assert np.allclose(grad, autograd, rtol=1e-4, atol=1e-6)


def test_balanced_class_weights_lift_the_minority_class():
    X, y = clusters(1200, 8, 2, separation=0.5, seed=3)
    keep = (y == 0) | (np.arange(len(y)) % 6 == 0)  # ~1 in 6 of class 1 survives: ~14% minority
    X, y = X[keep], y[keep]
    half = len(y) // 2
    plain = probe.Probe(class_weight="none").fit(X[:half], y[:half], X[half:], y[half:])
    balanced = probe.Probe(class_weight="balanced").fit(X[:half], y[:half], X[half:], y[half:])

    def recall(fitted: probe.Probe) -> float:
        return fitted.evaluate(X[half:], y[half:])["per_class_accuracy"]["1"]
    assert recall(balanced) > recall(plain) + 0.1


def test_metrics_match_sklearn_definitions():
    y = np.array([0, 0, 0, 1, 1, 2])
    proba = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    got = classification(y, proba, ["a", "b", "c"])
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["per_class_accuracy"] == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 1.0})
    assert got["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert got["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    from sklearn.metrics import f1_score
    assert got["macro_f1"] == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    assert macro_f1(y, proba.argmax(1), 3) == pytest.approx(got["macro_f1"])
    binary = classification(np.array([0, 1, 1, 0]), np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3]]), ["n", "p"])
    assert binary["roc_auc"] == 1.0


def test_seed_aggregation_means_numbers_sums_counts_keeps_curves_and_text():
    first = {"val": {"accuracy": 0.5, "confusion_matrix": [[1, 0], [0, 1]], "curve": [0.1, 0.2],
                     "predicted": [1, 0, 1]}, "layer": "3"}
    second = {"val": {"accuracy": 0.7, "confusion_matrix": [[0, 1], [1, 0]], "curve": [0.3, 0.4],
                      "predicted": [0, 0, 1]}, "layer": "3"}
    mean, std = aggregate([first, second], counts=probe.COUNTS)
    assert mean == {"val": {"accuracy": pytest.approx(0.6), "confusion_matrix": [[1, 1], [1, 1]],
                            "curve": [0.1, 0.2], "predicted": [1, 0, 1]}, "layer": "3"}
    assert std == {"val": {"accuracy": pytest.approx(0.1)}}
    assert aggregate([first, second])[0]["val"]["confusion_matrix"] == [[1, 0], [0, 1]]  # not declared: per seed


@pytest.mark.parametrize("keys", [{"lr": "nan"}, {"hidden": "16", "lr": "nan"}, {"weight_decay": "inf"}])
def test_a_nan_or_inf_hyperparameter_is_one_line(keys):
    with pytest.raises(UsageError, match="expected a finite number"):
        parse_config(probe.Config, {"dataset": "d", "backbone": "b", "target": "t", **keys})


@pytest.mark.parametrize("keys", [{"lr": float("nan")}, {"hidden": 16, "lr": float("nan")},
                                  {"weight_decay": float("nan")}, {"dropout": float("nan")},
                                  {"lr": float("inf")}, {"weight_decay": float("inf")}])
def test_the_config_refuses_nan_and_inf_itself(keys):
    """`x <= 0` lets NaN through; the checks are written so that it cannot."""
    with pytest.raises(ValueError):
        probe.Config(dataset="d", backbone="b", target="t", **keys)


@pytest.mark.parametrize("keys", [{}, {"hidden": 16, "dropout": 0.2, "epochs": 30, "lr": 0.01}])
def test_a_rerun_of_the_same_config_gives_identical_metrics(keys):
    toy_lake(n=150)
    first = train("probe", dataset="toy", backbone="fake", target="label", **keys)
    second = train("probe", dataset="toy", backbone="fake", target="label", **keys)
    assert first.run_id != second.run_id
    assert first.metrics == second.metrics
    assert first.row["data_fingerprint"] == second.row["data_fingerprint"]
    assert first.metrics["test"]["accuracy"] > 0.8


def test_seeds_report_mean_and_std_in_one_run():
    toy_lake(n=150)
    run = train("probe", dataset="toy", backbone="fake", target="label", seeds=3, hidden=8, epochs=15, lr=0.01, seed=4)
    seeds = run.metrics["seeds"]
    assert seeds["values"] == [4, 5, 6] and len(seeds["per_seed"]) == 3
    per_seed = [m["test"]["accuracy"] for m in seeds["per_seed"]]
    assert run.metrics["test"]["accuracy"] == pytest.approx(np.mean(per_seed))
    assert seeds["std"]["test"]["accuracy"] == pytest.approx(np.std(per_seed))
    assert sorted(p.name for p in run.folder.glob("model*.pt")) == ["model-seed5.pt", "model-seed6.pt", "model.pt"]


def test_layer_all_probes_every_layer_and_keeps_the_best_on_val():
    n = 150
    X, y = clusters(n, 6, 3, separation=2.0, seed=5)
    noise = np.random.default_rng(9).standard_normal((2, n, 6)).astype(np.float32)
    ids = [f"m{i:03d}" for i in range(n)]
    write_tracks("multi", [{"track_id": t, "label": f"k{c}"} for t, c in zip(ids, y)])
    write_split("multi", "default", {t: ("train", "train", "train", "val", "test")[i % 5] for i, t in enumerate(ids)})
    write_embeddings("multi", "deep", ids, {"0": noise[0], "1": noise[1], "2": X})

    run = train("probe", dataset="multi", backbone="deep", target="label", layer="all")
    assert run.row["layer"] == "2" and run.metrics["layer"] == "2"
    scores = run.metrics["layers"]
    assert list(scores) == ["0", "1", "2"]
    assert scores["2"]["val_macro_f1"] > max(scores["0"]["val_macro_f1"], scores["1"]["val_macro_f1"]) + 0.3
    assert run.metrics["test"]["accuracy"] > 0.8
    report = (run.folder / "report.md").read_text()
    assert "## Layers (val)" in report and "| **2** |" in report


def test_every_head_module_is_registered():
    """Every module in heads/ with the head protocol (a Config and a train function) is in HEADS,
    declares its headline, and builds an estimator that has learned nothing yet."""
    found = set()
    for info in pkgutil.iter_modules(heads.__path__):
        module = importlib.import_module(f"heads.{info.name}")
        if hasattr(module, "Config") and callable(getattr(module, "train", None)) and hasattr(module, "plots"):
            found.add(info.name)
    assert found == set(HEADS) and found
    toy_lake(n=60)
    for name, module in HEADS.items():
        assert module.__name__ == f"heads.{name}"
        assert module.HEADLINE and all(isinstance(m, Metric) for m in module.HEADLINE)
        if name == "lora":  # trains a backbone on audio, which toy_lake has not: tests/test_heads_lora.py builds it
            continue
        if name == "dcas":  # a recommender needs cultures and interactions, which toy_lake has not
            from tests.dcas_toy import dcas_lake
            dcas_lake("rec", n=60, users_per_culture=2, tracks_per_user=5)
            cfg = module.Config(dataset="rec", backbone="fake")
        else:
            # the playlist head learns a semantic_ids run's codes from playlists: the toy lake gets both
            keys = {"semantic_ids": playlist_demo.toy_run("toy")} if name == "playlist" else {}
            target = {"probe": "label", "retrieval": "terms"}.get(name, "score")
            cfg = module.Config(dataset="toy", backbone="fake", target=target, **keys)
        data = load(cfg, module.inputs(cfg))
        module.describe(cfg, data)
        estimator = module.build(cfg, 0, data)
        assert not [k for k in vars(estimator) if k.endswith("_")]  # the constructor learns nothing
