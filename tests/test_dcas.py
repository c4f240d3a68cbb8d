"""dcas: the gradient-reversal layer, OT marginals and tiny ε, full-ranking metrics against hand
computation and scikit-learn, baselines on planted toys, the adversary's effect on culture
leakage, and the head end to end on a planted lake (beats random; errors are one line)."""
from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from scipy import sparse
from sklearn.metrics import ndcg_score

from heads import dcas_baselines, dcas_eval, dcas_ot
from heads import recommend_metrics as rm
from heads.data import SelectionError
from heads.dcas_model import DCAS
from heads.ranking import reverse_gradient
from heads.train import train
from tests.dcas_toy import dcas_lake


def test_gradient_reversal_flips_and_scales_the_gradient_and_leaves_the_value():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.25 * w)


def test_ot_plans_meet_their_marginals_and_match_pot_for_one_user():
    rng = np.random.default_rng(0)
    groups = [np.array([0, 1, 2]), np.array([3, 4])]       # two users, histories of different length
    weights = [np.array([1.0, 2.0, 1.0]), np.array([3.0, 1.0])]
    vectors = rng.standard_normal((5, 4))
    candidates = rng.standard_normal((7, 4))
    history, mass = dcas_ot.padded(groups, weights, vectors)
    plan = dcas_ot.transport(history, mass, candidates, epsilon=0.05, max_iter=2000)
    a = mass / mass.sum(1, keepdims=True)
    assert np.allclose(plan.plans.sum(2), a, atol=1e-3)             # padding gets no mass
    assert np.allclose(plan.plans.sum(1), 1 / 7, atol=1e-3)
    costs = dcas_ot.squared_costs(history[:1, :3], candidates)[0]
    scale = np.median(costs)
    single = ot.sinkhorn(a[0, :3], np.full(7, 1 / 7), costs / scale, 0.05, method="sinkhorn_log",
                         numItermax=2000, stopThr=1e-9)
    assert np.allclose(plan.plans[0, :3], single, atol=1e-3)


def test_tiny_epsilon_is_raised_with_a_note_and_never_gives_nan():
    rng = np.random.default_rng(1)
    history, mass = dcas_ot.padded([np.arange(4)], [np.ones(4)], 100 * rng.standard_normal((4, 8)))
    plan = dcas_ot.transport(history, mass, 100 * rng.standard_normal((30, 8)), epsilon=1e-12)
    assert np.isfinite(plan.plans).all() and plan.epsilon >= dcas_ot.MIN_EPSILON
    assert plan.notes and "raised" in plan.notes[0]
    assert np.isfinite(dcas_ot.conditioned_cost(plan.plans, history, 100 * rng.standard_normal((30, 8)))).all()


def test_ranking_metrics_against_hand_computation_and_sklearn():
    train = sparse.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]]))
    test = sparse.csr_matrix(np.array([[0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 1]]))
    scores = np.array([[9, 5, 4, 3, 1, 0], [0, 9, 1, 2, 3, 4.0]])
    ranked = rm.rank_users(lambda rows: scores[rows], train, test, ks=(2, 3))
    # user 0: train track 0 is out; order 1, 2, 3, 4, 5: held-out 2 at rank 1, 4 at rank 3
    assert ranked.per_user["recall@2"].tolist() == [0.5, 1.0]
    assert ranked.per_user["ndcg@2"][0] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert ranked.per_user["mrr"].tolist() == [0.5, 1.0]
    for user in (0, 1):
        keep = train.toarray()[user] == 0
        for k in (2, 3):
            want = ndcg_score(test.toarray()[user][keep][None], scores[user][keep][None], k=k)
            assert ranked.per_user[f"ndcg@{k}"][user] == pytest.approx(want)
    assert ranked.top[0].tolist() == [1, 2, 3]


def test_bootstrap_interval_and_paired_test():
    better = np.linspace(0.5, 1.0, 40)
    lo, hi = rm.bootstrap_ci(better)
    assert lo < better.mean() < hi
    assert rm.paired_test(better, better - 0.1) < 0.01
    assert rm.paired_test(better, better) == 1.0


def test_popularity_wins_when_interactions_are_popularity_only():
    rng = np.random.default_rng(0)
    users, tracks = 60, 50
    p = (np.arange(tracks) + 1.0) ** -1.5
    p /= p.sum()
    dense = np.zeros((users, tracks))
    for u in range(users):
        dense[u, rng.choice(tracks, 12, replace=False, p=p)] = 1
    test = np.zeros_like(dense)
    for u in range(users):
        held = rng.choice(np.flatnonzero(dense[u]))
        dense[u, held], test[u, held] = 0, 1
    train_m, test_m = sparse.csr_matrix(dense), sparse.csr_matrix(test)
    X = rng.standard_normal((tracks, 8))               # vectors carry nothing
    ndcg = {name: rm.rank_users(score, train_m, test_m).per_user["ndcg@10"].mean() for name, score in {
        "popularity": dcas_baselines.popularity(train_m), "content": dcas_baselines.content_cosine(train_m, X)}.items()}
    assert ndcg["popularity"] > ndcg["content"] + 0.1


def test_content_wins_on_a_cold_start_slice():
    X, train_m, test_m = _cold_start_toy()
    recall = {name: rm.rank_users(score, train_m, test_m).per_user["recall@10"].mean() for name, score in {
        "popularity": dcas_baselines.popularity(train_m), "item_knn": dcas_baselines.item_knn(train_m),
        "content": dcas_baselines.content_cosine(train_m, X)}.items()}
    assert recall["content"] > 0.3
    assert recall["popularity"] < 0.1 and recall["item_knn"] < 0.1


def _planted(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    culture = np.arange(n) % 3
    X = np.concatenate([3 * rng.standard_normal((3, 6))[culture], rng.standard_normal((n, 6))], 1)
    return X + 0.5 * rng.standard_normal(X.shape), culture, np.arange(n) % 5 < 3


def test_adversary_drives_the_za_culture_probe_toward_chance_and_its_ablation_does_not():
    X, culture, fit = _planted()
    fit_culture = np.where(fit, culture, -1)
    empty = np.zeros(0, dtype=np.int64)
    probes = {}
    # disentangle off in both, so the adversary alone is what differs (decorrelation from zs also
    # empties za of culture, which would hide whether the adversary works)
    for ablate in (("disentangle",), ("disentangle", "adv")):
        model = DCAS(["a", "b", "c"], [], hidden=32, z=4, epochs=100, batch=64, ablate=frozenset(ablate),
                     seed=0).fit(X, fit_culture, None, empty, empty)
        probes[ablate] = dcas_eval.leakage_probe(model.factors(X)["za"], culture, fit, ~fit, 0)
    raw = dcas_eval.leakage_probe(X, culture, fit, ~fit, 0)
    assert raw > 0.9
    alone, without = probes[("disentangle",)], probes[("disentangle", "adv")]
    assert alone < 0.55                             # chance is 1/3
    assert without > alone + 0.2


def test_head_beats_random_reports_baselines_and_leaks_less_than_raw():
    dcas_lake()
    run = train("dcas", dataset="rec", backbone="fake", interaction_split="last", epochs=30, hidden=32, z=4,
                batch=64, bpr_iterations=30)
    m = run.metrics["test"]
    random_recall = 20 / 240
    assert m["recall_20"] > 2 * random_recall
    assert set(m["ndcg_20_by_method"]) == {"dcas", "popularity", "content", "item_knn", "bpr_mf", "lightfm_like"}
    assert "p_vs_dcas" in m["methods"]["popularity"]["ndcg@20"]
    lo, hi = m["methods"]["dcas"]["ndcg@20"]["ci"]
    assert lo <= m["ndcg_20"] <= hi
    assert m["za_leakage"] < m["raw_leakage"]
    for key in ("serendipity", "calibration_kl", "target_culture_prob", "alignment_kl", "minority_exposure_20",
                "coverage_20", "wasserstein_before", "wasserstein_after"):
        assert np.isfinite(m[key]), key
    assert set(m["ndcg_20_by_user_culture"]) == {"maqam", "raga", "west"}
    assert (run.folder / "ndcg_by_culture.png").is_file() and (run.folder / "factors_2d.png").is_file()
    assert len(m["projection"]["za"]) == len(m["projection"]["culture"]) == 240


def test_unknown_interaction_split_and_ablation_are_one_line_and_no_split_is_made_in_memory_with_a_note():
    from lake.cli import UsageError

    dcas_lake(n=90, users_per_culture=3, tracks_per_user=10)
    with pytest.raises(SelectionError, match="interaction_split='nope' does not exist.*split=nope"):
        train("dcas", dataset="rec", backbone="fake", interaction_split="nope", epochs=1)
    with pytest.raises(UsageError, match="ablate=adversary: one of adv, ot, disentangle"):
        train("dcas", dataset="rec", backbone="fake", ablate="adversary")
    run = train("dcas", dataset="rec", backbone="fake", epochs=1, hidden=8, z=2, baselines=False,
                source="collection")
    assert run.metrics["data"]["test_pairs"] == 9                   # one per user, leave-last-out
    test = run.metrics["test"]                                      # the source probes, next to the culture ones
    assert test["source_chance"] == 0.5 and 0 <= test["za_source_leakage"] <= 1
    assert test["za_source_leakage_by_method"] == {"dcas": test["za_source_leakage"]}
    assert np.isfinite(test["raw_source_leakage"])
    assert "leave-last-out by ts made in memory" in (run.folder / "report.md").read_text()


def test_recommend_lists_target_culture_tracks_outside_the_history_and_unknowns_are_one_line():
    from heads import recommend as rec
    from lake.cli import UsageError

    dcas_lake()
    train("dcas", dataset="rec", backbone="fake", interaction_split="last", epochs=5, hidden=16, z=4,
          baselines=False)
    cfg = rec.RecommendConfig(user="raga-u001", target_culture="maqam", k=5, dataset="rec")
    _, listed, summary = rec.recommend(cfg)
    assert len(listed) == 5 and {r["culture"] for r in listed} == {"maqam"}
    assert all(np.isfinite(r["score"]) for r in listed)
    assert [r["score"] for r in listed] == sorted((r["score"] for r in listed), reverse=True)
    assert 0 <= summary["target_culture_prob"] <= 1
    with pytest.raises(UsageError, match="user='nobody' has no history"):
        rec.recommend(rec.RecommendConfig(user="nobody", target_culture="maqam", dataset="rec"))
    with pytest.raises(UsageError, match="target_culture='polka' is not a culture.*maqam, raga, west"):
        rec.recommend(rec.RecommendConfig(user="raga-u001", target_culture="polka", dataset="rec"))


def _cold_start_toy(seed: int = 0) -> tuple[np.ndarray, sparse.csr_matrix, sparse.csr_matrix]:
    """80 tracks in 4 genres (planted in the vectors); users play their genre among tracks 0–59 and
    are tested on a track of their genre among 60–79, which nobody played in train."""
    rng = np.random.default_rng(seed)
    tracks, users = 80, 40
    genre = np.arange(tracks) % 4
    X = 4 * np.eye(4)[genre] + 0.3 * rng.standard_normal((tracks, 4))
    cold = np.arange(60, 80)
    train = np.zeros((users, tracks))
    test = np.zeros((users, tracks))
    for u in range(users):
        mine = np.flatnonzero(genre[:60] == u % 4)
        train[u, rng.choice(mine, 6, replace=False)] = 1
        test[u, rng.choice(cold[genre[cold] == u % 4])] = 1
    return X, sparse.csr_matrix(train), sparse.csr_matrix(test)


def test_lightfm_like_hybrid_beats_pure_id_mf_on_a_cold_start_slice():
    X, train_m, test_m = _cold_start_toy()
    recall = {name: rm.rank_users(score, train_m, test_m).per_user["recall@10"].mean() for name, score in {
        "bpr_mf": dcas_baselines.bpr_mf(train_m, 8, 50, 0),
        "hybrid": dcas_baselines.hybrid_mf(train_m, X, 8, 100, 0)}.items()}
    assert recall["hybrid"] > 0.5                   # content makes the cold tracks of the user's genre
    assert recall["hybrid"] > recall["bpr_mf"] + 0.3  # id-MF has nothing for a never-played track


def test_gaussian_total_correlation_is_zero_for_independent_factors_and_matches_the_closed_form():
    from heads.dcas_model import gaussian_total_correlation

    rng = np.random.default_rng(0)
    independent = torch.from_numpy(rng.standard_normal((4000, 3)) * [1.0, 3.0, 0.2])
    assert abs(float(gaussian_total_correlation([independent[:, :1], independent[:, 1:2], independent[:, 2:]],
                                                ridge=0.0))) < 0.01
    values = []
    for rho in (0.3, 0.6, 0.9):
        sigma = np.array([[1.0, rho, 0.0], [rho, 1.0, rho / 3], [0.0, rho / 3, 1.0]])
        sample = rng.multivariate_normal(np.zeros(3), sigma, size=4000)
        cov = np.cov(sample.T)
        closed = 0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1])   # by hand, per column
        columns = torch.from_numpy(sample)
        tc = float(gaussian_total_correlation([columns[:, :1], columns[:, 1:2], columns[:, 2:]], ridge=0.0))
        assert tc == pytest.approx(closed, rel=1e-6)
        values.append(tc)
    assert values[0] > 0.03 and values[0] < values[1] < values[2]
    # between groups: only dependence across blocks counts, not inside one
    inside = rng.multivariate_normal(np.zeros(2), [[1.0, 0.9], [0.9, 1.0]], size=4000)
    blocks = torch.from_numpy(np.concatenate([inside, rng.standard_normal((4000, 1))], 1))
    assert abs(float(gaussian_total_correlation([blocks[:, :2], blocks[:, 2:]], ridge=0.0))) < 0.01


def test_source_adversary_drives_the_za_source_probe_toward_chance_and_its_ablation_does_not():
    rng = np.random.default_rng(0)
    n = 240
    source = np.arange(n) % 2                           # which collection a track came from
    X = np.concatenate([3 * rng.standard_normal((2, 6))[source], rng.standard_normal((n, 6))], 1)
    X = X + 0.5 * rng.standard_normal(X.shape)
    fit = np.arange(n) % 5 < 3
    no_culture = np.full(n, -1)                          # the culture adversary idle: the source one alone acts
    empty = np.zeros(0, dtype=np.int64)
    probes = {}
    for ablate in (("disentangle",), ("disentangle", "adv")):
        model = DCAS(["a", "b"], [], hidden=32, z=4, epochs=100, batch=64, ablate=frozenset(ablate), seed=0,
                     sources=["s1", "s2"]).fit(X, no_culture, None, empty, empty, np.where(fit, source, -1))
        probes[ablate] = dcas_eval.leakage_probe(model.factors(X)["za"], source, fit, ~fit, 0)
    assert dcas_eval.leakage_probe(X, source, fit, ~fit, 0) > 0.9
    alone, without = probes[("disentangle",)], probes[("disentangle", "adv")]
    assert alone < 0.7                                  # chance is 1/2
    assert without > alone + 0.2


def test_a_remade_interaction_split_changes_the_data_fingerprint():
    from heads import dcas
    from heads.data import load
    from lake import interactions

    dcas_lake(n=90, users_per_culture=3, tracks_per_user=10)

    def fingerprint() -> str:
        cfg = dcas.Config(dataset="rec", backbone="fake", interaction_split="last")
        data = load(cfg, dcas.inputs(cfg))
        dcas.prepare(cfg, data)
        return data.fingerprint

    first = fingerprint()
    assert fingerprint() == first
    # same interactions, same split name, other held-out pairs: the numbers would differ, so must the hash
    assert interactions.main(["dataset=rec", "split=last", "method=fraction", "fraction=0.4"]) == 0
    assert fingerprint() != first


def test_ablations_are_rows_of_one_run_and_without_the_adversary_za_keeps_the_culture(capsys):
    from heads import compare

    dcas_lake()
    # the disentangling terms off in the run (both rows): a culture classifier on zs with HSIC/TC
    # between zs and za also empties za of culture, which would hide what the adversary alone does;
    # what keeps culture in za here is the co-listening loss (users mostly play their own culture)
    run = train("dcas", dataset="rec", backbone="fake", interaction_split="last", epochs=30, hidden=32, z=4,
                batch=64, baselines=False, ablate="adv", culture_weight=0, decor_weight=0, tc_weight=0,
                infonce_weight=0)
    m = run.metrics["test"]
    assert set(m["methods"]) == {"dcas", "dcas-no_adv"} and "p_vs_dcas" in m["methods"]["dcas-no_adv"]["ndcg@20"]
    probe = m["za_leakage_by_method"]
    assert m["za_leakage"] == probe["dcas"] and m["raw_leakage"] > 0.9
    assert probe["dcas-no_adv"] > 0.9                          # chance is 1/3
    assert probe["dcas"] < probe["dcas-no_adv"] - 0.25
    assert compare.main(["dataset=rec", "head=dcas", "format=md"]) == 0
    out = capsys.readouterr().out
    assert "| method | NDCG@20 | R@20 | MRR | HR@10 | p NDCG@20 |" in out
    row = next(line for line in out.splitlines() if line.startswith("| dcas-no_adv |"))
    lo, hi = m["methods"]["dcas-no_adv"]["ndcg@20"]["ci"]
    assert f"[{lo:.3f}, {hi:.3f}]" in row


def _culture_blind_za_toy(seed: int = 0) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray, np.ndarray,
                                                    np.ndarray]:
    rng = np.random.default_rng(seed)
    C, per, users = 3, 40, 36
    n = C * per
    culture = np.repeat(np.arange(C), per)
    taste = np.tile(np.arange(4), n // 4)                      # 4 tastes in every culture
    za = 3 * np.eye(4)[taste] + 0.3 * rng.standard_normal((n, 4))  # no culture in za (the adversary's job)
    zs = 3 * np.eye(C)[culture] + 0.3 * rng.standard_normal((n, C))
    train, test = np.zeros((users, n)), np.zeros((users, n))
    for u in range(users):
        own, t = u % C, (u // C) % 4
        mine = np.flatnonzero((culture == own) & (taste == t))
        other = np.flatnonzero((culture != own) & (taste == t))
        picks = list(rng.choice(mine, 6, replace=False)) + list(rng.choice(other, 1, replace=False))
        train[u, picks] = 1
        test[u, rng.choice(np.setdiff1d(mine, picks))] = 1
    return sparse.csr_matrix(train), sparse.csr_matrix(test), za, zs, culture


def test_full_ranking_takes_the_users_culture_from_the_history_when_za_carries_none():
    """Users play 6 of 7 tracks in their own culture, all of one taste; za holds the taste and no
    culture (what the adversary makes of it). Scored by the za cost alone, every culture's tracks of
    that taste look alike (NDCG@10 0.23 before the fix); with log p(culture | the history's culture
    mix) added, the own-culture ones come first (0.70)."""
    train_m, test_m, za, zs, culture = _culture_blind_za_toy()
    scorer = dcas_eval.OTScorer(train_m, za, zs, culture, 3, 0.05)
    assert rm.rank_users(scorer, train_m, test_m).per_user["ndcg@10"].mean() > 0.5
