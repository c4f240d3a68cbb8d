"""The retrieval head's pieces, each against a hand-made answer."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from heads import retrieval_loss as rl
from heads import retrieval_metrics as rm
from heads.retrieval import Config, write_index
from lake import atomic, paths


def test_multi_positive_infonce_equals_the_hand_computed_value():
    logits = torch.tensor([[2.0, 1.0, 0.0],
                           [0.5, 0.5, 3.0],
                           [1.0, -1.0, 0.0]])
    positive = torch.tensor([[True, True, False],    # two terms: neither is the other's negative
                             [False, False, True],
                             [False, False, False]])  # a no-term chunk: no row term
    e = math.exp
    row0 = (-math.log(e(2) / (e(2) + e(0))) - math.log(e(1) / (e(1) + e(0)))) / 2
    row1 = -math.log(e(3) / (e(3) + e(0.5) + e(0.5)))
    want = (row0 + row1) / 2
    got = rl.multi_positive_nce(logits, positive)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # the term → chunk direction: columns are queries, the no-term chunk a negative of each
    col0 = -math.log(e(2) / (e(2) + e(0.5) + e(1)))
    col1 = -math.log(e(1) / (e(1) + e(0.5) + e(-1)))
    col2 = -math.log(e(3) / (e(3) + e(0) + e(0)))
    assert rl.multi_positive_nce(logits.T, positive.T).item() == pytest.approx((col0 + col1 + col2) / 3, rel=1e-6)
    assert rl.both_directions(logits, positive).item() == pytest.approx(
        0.5 * (want + (col0 + col1 + col2) / 3), rel=1e-6)


def test_hard_negatives_never_include_a_positive_or_an_alias():
    from ingest.glossary import Glossary
    from heads.retrieval_text import hash_encode

    glossary = Glossary({"transformer": None, "transformers model": None, "transformation": None, "gpu": None,
                         "gpus cluster": None, "beam search": None, "beam former": None}, {"transformers": "transformer"})
    terms = sorted(glossary.descriptions)  # main terms only: an alias is never a column
    vectors = hash_encode(terms)
    near = rl.neighbours(vectors, 3)
    assert near.shape == (len(terms), 3) and not np.any(near == np.arange(len(terms))[:, None])
    rng = np.random.default_rng(0)
    for _ in range(200):
        positives = rng.choice(len(terms), size=rng.integers(1, 4), replace=False)
        hard = rl.hard_negatives(positives, near, 1.0, rng)
        assert not np.isin(hard, positives).any()
        assert all(terms[h] != glossary.main(a) for h in hard for a in glossary.aliases
                   if glossary.main(a) in {terms[p] for p in positives})
    t = terms.index("transformer")
    assert terms.index("transformers model") in near[t]  # the neighbours are the spelling-near terms


def test_threshold_meets_the_false_accept_rate_on_val():
    rng = np.random.default_rng(1)
    for n, rate in [(200, 0.05), (37, 0.1), (10, 0.05), (500, 0.0)]:
        scores = rng.normal(size=n).astype(np.float32)
        scores[:5] = scores[5]  # ties at the boundary
        t = rl.rejection_threshold(scores, rate)
        assert np.mean(scores >= t) <= rate + 1e-12
        assert np.mean(scores >= t) >= rate - 1.5 / n  # and not needlessly strict
    assert rl.rejection_threshold(np.zeros(0), 0.05) == -math.inf


def test_faiss_inner_product_index_equals_numpy(tmp_path):
    import faiss

    rng = np.random.default_rng(2)
    terms = rng.normal(size=(300, 32)).astype(np.float32)
    terms /= np.linalg.norm(terms, axis=1, keepdims=True)
    queries = rng.normal(size=(20, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    write_index(terms, tmp_path / "index.faiss")
    scores, ids = faiss.read_index(str(tmp_path / "index.faiss")).search(queries, 5)
    want = rm.topk(queries @ terms.T, 5)
    assert np.array_equal(ids, want)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ terms.T, want, 1), rtol=1e-5, atol=1e-6)


def test_metrics_count_aliases_as_their_main_term_and_multiple_positives():
    sims = np.array([[0.9, 0.8, 0.1, 0.0],    # positives 0 and 2: one in the top 1, both in the top 5
                     [0.1, 0.2, 0.3, 0.4],    # positive 1: third
                     [0.5, 0.1, 0.1, 0.1]])   # no term
    positives = [np.array([0, 2]), np.array([1]), np.array([], np.int64)]
    got = rm.audio_to_term(sims, positives)
    assert got["recall_at_1"] == pytest.approx((0.5 + 0) / 2)
    assert got["recall_at_5"] == pytest.approx(1.0)
    assert got["map_at_10"] == pytest.approx(((1 / 1 + 2 / 3) / 2 + 1 / 3) / 2)
    rej = rm.rejection(sims.max(1), np.array([True, True, False]), 0.45)
    assert rej["rejection_rate"] == 0.0 and rej["false_accept_rate"] == 1.0 and rej["false_reject_rate"] == 0.5


@pytest.mark.parametrize("pairs, needle", [({"hard_negatives": "bm25"}, "hard_negatives"),
                                           ({"batch": 1}, "batch"), ({"max_false_accept": 1.5}, "max_false_accept"),
                                           ({"term_weight": 0, "text_weight": 0}, "nothing to learn")])
def test_bad_config_is_refused_by_name(pairs, needle):
    with pytest.raises(ValueError, match=needle):
        Config(dataset="d", backbone="logmel", **pairs)


def test_the_head_trains_with_glossary_hard_negatives_and_writes_its_index():
    import faiss

    from heads.testing import toy_lake
    from heads.train import train

    toy_lake(n=90, classes=4, dim=8)  # terms = [label]: four well separated clusters, no glossary table, no texts
    run = train("retrieval", dataset="toy", backbone="fake", hard_negatives="glossary", hard_k=2, epochs=40, batch=16,
                dim=16, hidden=16)
    assert run.metrics["test"]["recall_at_1"] > 0.8
    assert run.metrics["data"]["terms"] == 4
    index = faiss.read_index(str(run.folder / "index.faiss"))
    assert index.ntotal == 4 and index.d == 16
    assert run.metrics["test"]["no_term_chunks"] == 0 and run.metrics["test"]["rejection_rate"] is None


def test_the_glossary_and_the_text_vectors_are_in_the_runs_data_fingerprint():
    from heads.retrieval import inputs, prepare
    from heads.data import load
    from heads.testing import toy_lake
    from ingest import glossary

    toy_lake(n=30, classes=3, dim=4)
    cfg = Config(dataset="toy", backbone="fake", text="none", text_model="hash")

    def fingerprint(entries: dict, aliases: dict) -> str:
        glossary.write(glossary.Glossary(entries, aliases), "toy")
        data = load(cfg, inputs(cfg))
        before = data.fingerprint
        prepare(cfg, data)
        assert data.fingerprint != before  # prepare covered what it read
        return data.fingerprint

    base = fingerprint({"c0": None, "c1": None, "c2": None}, {})
    assert fingerprint({"c0": None, "c1": None, "c2": None}, {}) == base  # same data, same hash
    assert fingerprint({"c0": None, "c1": None, "c2": None, "c3": None}, {}) != base  # one more term
    assert fingerprint({"c0": None, "c1": None, "c2": None}, {"cee two": "c2"}) != base  # one more alias
    # the same glossary and rows, other stored text vectors for the terms: another hash
    for part in paths.partition_dir("text_embeddings", text_model="hash").glob("part-*.parquet"):
        table = pq.read_table(part)
        flipped = pa.array([[-x for x in v] for v in table.column("emb").to_pylist()], table.schema.field("emb").type)
        atomic.write_parquet(table.set_column(table.schema.get_field_index("emb"), "emb", flipped), part)
    assert fingerprint({"c0": None, "c1": None, "c2": None}, {}) != base


def test_early_stopping_keeps_the_later_of_tied_epochs(monkeypatch):
    """Val mAP@10 saturates on a small glossary; a tie is progress and its later weights are kept."""
    from heads import retrieval
    from heads.retrieval import HYPERPARAMETERS, Retriever

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6)).astype(np.float32)
    positives = [np.array([i % 3]) for i in range(40)]
    train, val = np.arange(40) < 30, np.arange(40) >= 30
    terms = rng.normal(size=(3, 8)).astype(np.float32)
    cfg = Config(dataset="d", backbone="x", epochs=8, patience=2, batch=8, dim=8, hidden=8)
    model = Retriever(0, ["a", "b", "c"], {}, **{k: getattr(cfg, k) for k in HYPERPARAMETERS})
    scores, snapshots = iter([0.5, 0.5, 0.4, 0.4, 0.9, 0.9, 0.9, 0.9]), []

    def scored(sims, pos):
        snapshots.append({k: v.clone() for k, v in model.net_.state_dict().items()})
        return {"map_at_10": next(scores)}

    monkeypatch.setattr(retrieval.rm, "audio_to_term", scored)
    model.fit(X, positives, train, val, terms, np.full(40, -1), np.zeros((0, 8), np.float32))
    assert len(model.history_) == 4  # epochs 2 and 3 fall below the tie at epoch 1: patience 2 stops there
    kept = model.net_.state_dict()
    assert all(torch.equal(kept[k], snapshots[1][k]) for k in kept)  # epoch 1's weights, not epoch 0's
