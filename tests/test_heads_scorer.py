"""The scorer head: its losses against first principles, gradient reversal, list sampling, the
metrics against scipy, the speaker adversary on the demo's correlated groups, calibration and
the run it records."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats

from heads import compare, ranking, runs, scorer
from heads import __main__ as train_cli
from heads import ranking_metrics as rm
from heads.data import SelectionError
from heads.testing import toy_lake, write_embeddings, write_split, write_tracks
from heads.train import train
from lake.cli import UsageError, parse_config


# ---- ListMLE, RankNet --------------------------------------------------------------------

def plackett_luce(scores: list[float], order: tuple[int, ...]) -> float:
    """P(order) by the definition: pick the first among all with prob ∝ exp(s), then the next
    among the rest, ... (no shared code with ranking.listmle)."""
    left, p = list(order), 1.0
    for item in order:
        p *= math.exp(scores[item]) / sum(math.exp(scores[j]) for j in left)
        left.remove(item)
    return p


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_listmle_is_the_negative_plackett_luce_log_likelihood(n):
    scores = np.random.default_rng(n).normal(0, 1.5, n).tolist()
    total = 0.0
    for order in itertools.permutations(range(n)):
        ordered = torch.tensor([[scores[i] for i in order]], dtype=torch.float64)
        nll = float(ranking.listmle(ordered, torch.ones_like(ordered, dtype=torch.bool))[0])
        assert nll == pytest.approx(-math.log(plackett_luce(scores, order)), rel=1e-9)
        total += math.exp(-nll)
    assert total == pytest.approx(1.0)  # a distribution over the n! orders


def test_padding_changes_neither_the_loss_nor_its_gradient():
    a, b = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([1.0, 0.3, 0.2, -0.4, -2.0])
    alone = [ranking.listmle(x[None].clone().requires_grad_(True), torch.ones(1, len(x), dtype=torch.bool))
             for x in (a, b)]
    padded = torch.full((2, 8), 123.0)  # whatever sits in the padding
    padded[0, :3], padded[1, :5] = a, b
    padded.requires_grad_(True)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3], mask[1, :5] = True, True
    loss = ranking.listmle(padded, mask)
    assert torch.allclose(loss, torch.stack([alone[0][0], alone[1][0]]))
    loss.sum().backward()
    assert torch.isfinite(padded.grad).all() and (padded.grad[~mask] == 0).all()
    x = a[None].clone().requires_grad_(True)
    ranking.listmle(x, torch.ones(1, 3, dtype=torch.bool)).sum().backward()
    assert torch.allclose(padded.grad[0, :3], x.grad[0])


def test_ranknet_is_pairwise_logistic_with_margin_and_ties_make_no_pair():
    scores = torch.tensor([[1.0, 0.2, 0.5, 9.0]])
    truth = torch.tensor([[3.0, 2.0, 2.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    pairs = [(0, 1), (0, 2)]  # (1, 2) tie; item 3 is padding
    for margin in (0.0, 1.0):
        expected = np.mean([math.log1p(math.exp(margin - (scores[0, i] - scores[0, j]).item())) for i, j in pairs])
        assert float(ranking.ranknet(scores, truth, mask, margin)) == pytest.approx(expected, rel=1e-6)


# ---- gradient reversal ---------------------------------------------------------------------

def test_gradient_reversal_flips_the_sign_and_scales_by_lambda():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 4.0, -1.0])
    y = ranking.reverse_gradient(x, 0.3)
    assert torch.equal(y, x)  # the identity going forward
    (w * y).sum().backward()
    assert torch.allclose(x.grad, -0.3 * w)

    # Encoder → reversal → adversary, loss ADDED: the adversary descends its loss, the encoder ascends it.
    torch.manual_seed(0)
    encoder, adversary = torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)
    inputs, label = torch.randn(8, 3), torch.randint(0, 2, (8,))

    def grads(scale: float | None):
        encoder.zero_grad()
        adversary.zero_grad()
        hidden = encoder(inputs)
        hidden = ranking.reverse_gradient(hidden, scale) if scale is not None else hidden
        torch.nn.functional.cross_entropy(adversary(hidden), label).backward()
        return encoder.weight.grad.clone(), adversary.weight.grad.clone()

    plain_encoder, plain_adversary = grads(None)
    reversed_encoder, reversed_adversary = grads(0.7)
    assert torch.allclose(reversed_adversary, plain_adversary)
    assert torch.allclose(reversed_encoder, -0.7 * plain_encoder)


def test_ganin_lambda_ramps_from_zero_towards_one():
    assert ranking.ganin_lambda(0.0) == 0.0
    assert ranking.ganin_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert 0.99 < ranking.ganin_lambda(1.0) < 1.0


# ---- lists from groups ---------------------------------------------------------------------

def test_sublists_cover_every_clip_once_best_first_and_cut_big_groups():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], [3, 70, 10])
    key = np.round(rng.normal(0, 1, len(groups)), 1)  # rounded: ties
    key[:3] = 5.0                                     # a group of three equal scores
    lists = ranking.sublists(groups, key, max_list=32, rng=rng)
    items = lists[lists >= 0]
    assert sorted(items) == list(range(len(groups)))  # each clip exactly once
    lengths = (lists >= 0).sum(axis=1)
    assert lengths.max() <= 32 and sorted(lengths) == [3, 10, 23, 23, 24]  # 70 dealt into 3 near-equal lists
    for row in lists:
        row = row[row >= 0]
        assert len(set(groups[row])) == 1 and np.all(np.diff(key[row]) <= 0)  # one group, best → worst
    first = [tuple(ranking.sublists(groups, key, 32, np.random.default_rng(s))[0]) for s in range(8)]
    assert len(set(first)) > 1  # ties (and the dealing) change from epoch to epoch
    for block in ranking.batches(lists, 2, rng):
        assert block.shape[0] <= 2 and (block[:, -1] >= 0).any()  # trimmed to its longest list


# ---- metrics -------------------------------------------------------------------------------

def test_within_group_metrics_match_scipy_and_brute_force():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), [2, 5, 7, 4, 1, 6])
    key = np.round(rng.normal(0, 1, len(groups)), 1)
    pred = key + rng.normal(0, 0.8, len(groups))
    got, used = rm.group_spearman(pred, key, groups)
    expected = [stats.spearmanr(pred[groups == g], key[groups == g]).statistic for g in range(6)
                if (groups == g).sum() >= 2 and np.ptp(key[groups == g]) > 0]
    assert used == len(expected) and got == pytest.approx(np.mean(expected))
    assert np.allclose(rm.ranks_within(key, groups)[groups == 2], stats.rankdata(key[groups == 2]))

    within = rm.within_groups(pred, key, groups, k=3, rng=rng)
    right = pairs = 0
    for g in range(6):
        rows = np.flatnonzero(groups == g)
        for i, j in itertools.combinations(rows, 2):
            if key[i] != key[j]:
                pairs += 1
                right += (pred[i] - pred[j]) * (key[i] - key[j]) > 0
    assert within["pairs"] == pairs and within["pairwise_accuracy"] == pytest.approx(right / pairs)
    assert 0 < within["ndcg"] <= 1


def test_errors_per_band_and_system_level_spearman():
    score = np.array([40.0, 60.0, 70.0, 90.0, 95.0])
    calibrated = np.array([52.0, 58.0, 86.0, 91.0, 80.0])
    got = rm.errors(calibrated, score, (50.0, 85.0))
    assert list(got["band_n"]) == ["<50", "50–85", "≥85"] and got["band_n"]["≥85"] == 2
    assert got["band_accuracy"] == {"<50": 0.0, "50–85": 0.5, "≥85": 0.5}
    assert got["mae"] == pytest.approx(np.mean([12, 2, 16, 1, 15]))
    speakers = np.array(["a", "a", "b", "c", None], dtype=object)
    assert rm.system_spearman(calibrated, score, speakers) == pytest.approx(1.0)


# ---- the config ----------------------------------------------------------------------------

@pytest.mark.parametrize("keys, message", [
    ({"lr": "nan"}, "expected a finite number"),
    ({"adv_weight": "-1"}, "adv_weight=-1.0: must be a finite number ≥ 0"),
    ({"target": "none", "loss": "mse"}, "loss=mse needs scores"),
    ({"bands": "85,50"}, "increasing edges"),
    ({"max_list": "1"}, "a list needs 2 or more"),
])
def test_bad_keys_are_one_line(keys, message):
    with pytest.raises(UsageError, match=message):
        parse_config(scorer.Config, {"dataset": "d", "backbone": "b", **keys})


@pytest.mark.parametrize("key", ["lr", "dropout", "weight_decay", "adv_weight", "adv_lr", "margin"])
def test_the_config_refuses_nan_itself(key):
    with pytest.raises(ValueError):
        scorer.Config(dataset="d", backbone="b", **{key: float("nan")})


# ---- training on lakes ---------------------------------------------------------------------

def test_a_scorer_run_learns_calibrates_and_leaves_its_predictions(capsys):
    lake = toy_lake(n=240)
    assert train_cli.main(["head=scorer", "dataset=toy", "backbone=fake", "epochs=40"]) == 0
    out = capsys.readouterr()
    assert "groups of group_id" in out.err and "spearman" in out.out
    (row,) = [r for r in runs.select(runs.catalog.connect()).to_pylist()]
    metrics = json.loads(row["metrics"])
    test = metrics["test"]
    assert test["spearman"] > 0.6 and test["pairwise_accuracy"] > 0.7 and test["mae"] < 6
    assert metrics["variant"] == "listmle" and row["target"] == "score" and row["spearman"] == test["spearman"]

    folder = runs.paths.root() / row["path"]
    assert {"model.pt", "predictions.parquet", "scatter-test.png", "bands.png", "report.md"} <= {
        p.name for p in folder.iterdir()}
    table = pq.read_table(folder / "predictions.parquet").to_pydict()
    assert len(table["track_id"]) == 240 and set(table["split"]) == {"train", "val", "test"}
    checkpoint = torch.load(folder / "model.pt", weights_only=False)
    again = scorer.Scorer.from_checkpoint(checkpoint)
    order = np.argsort(lake["ids"])
    assert np.allclose(again.predict(lake["X"][order]), table["calibrated"], atol=1e-6)  # the checkpoint alone
    train_rows = np.array(table["split"]) == "train"
    calibrated, raw = np.array(table["calibrated"])[train_rows], np.array(table["raw"])[train_rows]
    assert np.all(np.diff(calibrated[np.argsort(raw)]) >= -1e-9)  # isotonic: monotone in the raw output
    assert lake["score"].min() - 1e-6 <= calibrated.min() and calibrated.max() <= lake["score"].max() + 1e-6
    report = (folder / "report.md").read_text()
    assert "## Accuracy per score band" in report and "## band_mae" in report and "![scatter-test.png]" in report


@pytest.mark.parametrize("keys", [{"loss": "ranknet", "margin": "0.5"}, {"loss": "mse"},
                                  {"target": "none", "group": "group_id"}, {"group": "none"}])
def test_every_loss_and_grouping_trains(keys):
    toy_lake(n=180)
    run = train("scorer", dataset="toy", backbone="fake", epochs=25, **keys)
    test = run.metrics["test"]
    assert test["pairwise_accuracy"] > 0.6
    assert ("mae" in test) == (keys.get("target") != "none")


def test_groups_without_two_different_scores_are_refused():
    ids = [f"t{i}" for i in range(12)]
    write_tracks("flat", [{"track_id": t, "score": 50.0, "group_id": f"g{i // 3}"} for i, t in enumerate(ids)])
    write_split("flat", "default", {t: "train" if i < 9 else "val" for i, t in enumerate(ids)})
    write_embeddings("flat", "fake", ids, {"last": np.eye(12, dtype=np.float32)})
    with pytest.raises(SelectionError, match="nothing to rank"):
        train("scorer", dataset="flat", backbone="fake", speaker="none")
    with pytest.raises(SelectionError, match="target=label is VARCHAR, not a number"):
        toy_lake(n=30)
        train("scorer", dataset="toy", backbone="fake", target="label")


def correlated_demo_lake(n: int = 1920) -> None:
    """The demo's correlated singing groups (score follows the singer's skill), with the
    features a backbone might give: 4 noisy views of the take's pitch error (the quality a
    scorer should hear) and 16 of the singer's voice (identity, a shortcut to the score)."""
    from ingest import demo

    cfg = demo.Config(n=n)
    sung = [p for p in (demo.plan(cfg, i) for i in range(n)) if p.singer is not None and p.regime == "correlated"]
    rng = np.random.default_rng(0)
    error = np.array([p.pitch_error_cents for p in sung])
    quality = -(error - error.mean())[:, None] / error.std() + rng.normal(0, 0.25, (len(sung), 4))
    voice = rng.normal(0, 1, (10, 16))[[p.singer for p in sung]] + rng.normal(0, 1, (len(sung), 16))
    ids = [f"demo_{p.index:06d}" for p in sung]
    write_tracks("sung", [{"track_id": t, "score": p.score, "group_id": f"g{p.group}", "rank": p.rank,
                           "speaker_id": f"singer_{p.singer + 1:02d}"} for t, p in zip(ids, sung)])
    write_split("sung", "default", {t: ("train", "train", "train", "val", "test")[p.group % 5] for t, p in zip(ids, sung)})
    write_embeddings("sung", "voice", ids, {"last": np.hstack([quality, voice]).astype(np.float32)})


def test_the_speaker_adversary_unlearns_the_singer_and_keeps_the_ranking():
    """Measured here (seed 0): speaker probe 0.88 → 0.60 (chance 0.16), Spearman 0.971 → 0.965."""
    correlated_demo_lake()
    plain = train("scorer", dataset="sung", backbone="voice")
    debiased = train("scorer", dataset="sung", backbone="voice", adversary="speaker_id")
    before, after = plain.metrics["test"], debiased.metrics["test"]
    assert before["speaker_probe_accuracy"] > 0.6 > after["speaker_probe_accuracy"]
    assert before["speaker_probe_accuracy"] - after["speaker_probe_accuracy"] > 0.15
    assert after["speaker_probe_accuracy"] > after["speaker_chance"]  # lowered, not below chance
    assert abs(before["spearman"] - after["spearman"]) < 0.05 and after["spearman"] > 0.85

    assert torch.load(debiased.folder / "model.pt", weights_only=True)["adversary_classes"][0] == "singer_01"
    rows = compare.rows("sung", "scorer")
    assert [r["variant"] for r in rows] == ["listmle", "listmle · adv speaker_id"]
    header, cells = compare.table(rows)
    assert "speaker-probe accuracy" in header and "variant" in header
    assert cells[1][header.index("speaker-probe accuracy")].startswith("**")  # the lower is the better


def test_a_backbone_adversary_regresses_its_vectors():
    lake = toy_lake(n=120)
    write_embeddings("toy", "speakerenc", lake["ids"], {"last": np.random.default_rng(0).normal(size=(120, 6))
                                                        .astype(np.float32)})
    run = train("scorer", dataset="toy", backbone="fake", adversary="speakerenc", epochs=10)
    assert run.metrics["data"]["adversary"] == "backbone"
    checkpoint = torch.load(run.folder / "model.pt", weights_only=False)
    assert checkpoint["adversary_out"] == 6
