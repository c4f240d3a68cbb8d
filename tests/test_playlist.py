"""head=playlist: the trie, set-F1, and a tiny T5 that learns title → semantic IDs."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from heads import playlist_metrics as pm
from heads.playlist_model import IdTrie, Vocabulary, train_tokenizer
from heads.testing import toy_lake
from heads.train import train
from ingest.api import ingest

THEMES = {0: ["quiet piano", "calm piano study", "soft piano night"], 1: ["gym workout", "run fast workout", "power gym"],
          2: ["rainy jazz", "jazz cafe", "late jazz bar"]}


def test_set_prf_and_ranked_metrics_by_hand():
    p, r, f1 = pm.set_prf({"a", "b", "c", "d"}, {"a", "b", "e"})
    assert (p, r) == (0.5, 2 / 3) and f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    recall, ndcg = pm.recall_ndcg(["x", "a", "b"], {"a", "b"}, 3)
    assert recall == 1.0 and ndcg == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3)))
    assert pm.set_prf(set(), {"a"}) == (0.0, 0.0, 0.0)


def test_trie_admits_exactly_the_existing_ids():
    ids = np.array([[0, 1, 2], [0, 1, 0], [2, 0, 1], [0, 1, 2]])
    vocab = Vocabulary(train_tokenizer(["a b c"], (3, 3, 3), 50), (3, 3, 3))
    trie = IdTrie(ids, vocab)
    lookup = vocab.code_ids()
    expected = {tuple(int(lookup[level][c]) for level, c in enumerate(row)) for row in ids}
    assert trie.paths() == expected
    first = trie.allowed([])
    assert set(first) == {lookup[0][0], lookup[0][2], vocab.eos()}
    assert set(trie.allowed([lookup[0][0], lookup[1][1]])) == {lookup[2][2], lookup[2][0]}
    assert vocab.decode_ids([lookup[0][2], lookup[1][0], lookup[2][1], vocab.eos()]) == [(2, 0, 1)]


def playlist_lake(tmp_path, n_playlists=90):
    toy = toy_lake("toy", n=120, classes=3, dim=8)
    rng = np.random.default_rng(0)
    by_class = {c: [t for t, y in zip(toy["ids"], toy["y"]) if y == c] for c in range(3)}
    entries = []
    for i in range(n_playlists):
        c = i % 3
        entries.append({"playlist_id": f"p{i:03d}", "title": THEMES[c][i // 3 % 3],
                        "tracks": list(rng.choice(by_class[c], 6, replace=False))})
    path = tmp_path / "playlists.json"
    path.write_text(json.dumps(entries))
    ingest("toy", source="playlists", path=path)
    return toy


def test_t5_learns_titles_and_every_generated_id_exists(tmp_path):
    playlist_lake(tmp_path)
    ids_run = train("semantic_ids", dataset="toy", backbone="fake", codes="3,2")
    run = train("playlist", dataset="toy", semantic_ids=ids_run.run_id, epochs=30, d_model=32, heads=2,
                max_ids=4, beams=2, k=5, val=0.2, test=0.2)
    val = run.metrics["val"]
    assert val["invalid_rate"] == 0.0
    assert val["ids_per_playlist"] > 0
    assert val["recall"] > 0.3, val                   # the title names its songs' clusters
    assert val["f1"] > 2 * max(val["popularity_f1"], val["title_nn_f1"]), val
    assert "title_nn_f1" in val and run.row["backbones"] == ["fake"]

    from heads.playlist_generate import GenerateConfig, recommend
    rows, about = recommend(GenerateConfig(run=run.run_id, n=4, seed=1), "quiet piano")
    again, _ = recommend(GenerateConfig(run=run.run_id, n=4, seed=1), "quiet piano")
    assert rows == again and about["ids"] > 0 and len(rows) >= 1
    codes = {t: tuple(c) for t, c in zip(*_codes(ids_run.run_id))}
    assert all(codes[track] == code for track, code, _ in rows)  # each song comes from its generated ID
    done = subprocess.run([sys.executable, "-m", "heads.playlist_generate", f"run={run.run_id}", "gym workout", "n=3"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "gym workout" in done.stdout, done.stderr


def _codes(run_id):
    from lake import catalog
    rows = catalog.connect().execute("SELECT track_id, codes FROM semantic_ids WHERE run_id = $r", {"r": run_id}).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def test_untrained_t5_with_the_trie_generates_only_existing_ids():
    from heads.playlist_model import generate, small_t5
    ids = np.array([[0, 1], [2, 0], [3, 3], [1, 2]])
    vocab = Vocabulary(train_tokenizer(["quiet piano", "gym"], (4, 4), 50), (4, 4))
    model = small_t5(vocab.size, 16, 1, 2, seed=0).eval()
    titles = vocab.encode_titles(["quiet piano", "gym", "anything else"], 8)
    constrained = [vocab.decode_ids(t) for t in generate(model, titles, IdTrie(ids, vocab), 3, 6, 2)]
    assert sum(map(len, constrained)) > 0
    assert all(g in {tuple(r) for r in ids} for row in constrained for g in row)


def test_the_playlists_and_the_codes_read_are_in_the_data_fingerprint(tmp_path):
    from heads import playlist
    from heads.data import load
    from lake.cli import parse_config

    def fingerprint(run_id):
        cfg = parse_config(playlist.Config, {"dataset": "toy", "semantic_ids": run_id})
        data = load(cfg, playlist.inputs(cfg))
        before = data.fingerprint
        playlist.describe(cfg, data)
        assert data.fingerprint != before  # describe read both tables and covered them
        return data.fingerprint

    playlist_lake(tmp_path)
    ids_run = train("semantic_ids", dataset="toy", backbone="fake", codes="3,2").run_id
    first = fingerprint(ids_run)
    assert fingerprint(ids_run) == first
    playlist_lake(tmp_path, n_playlists=91)
    changed = fingerprint(ids_run)
    assert changed != first
    other_codes = train("semantic_ids", dataset="toy", backbone="fake", codes="3,3").run_id
    assert fingerprint(other_codes) not in (first, changed)


def test_the_trie_lets_an_id_recur_only_as_often_as_its_cluster_has_songs():
    ids, songs = np.array([[0, 1], [0, 2], [1, 0]]), np.array([2, 1, 1])
    vocab = Vocabulary(train_tokenizer(["x"], (2, 3), 10), (2, 3))
    lookup, eos = vocab.code_ids(), vocab.eos()

    def spell(*pairs):
        return [int(lookup[level][code]) for pair in pairs for level, code in enumerate(pair)]

    trie = IdTrie(ids, vocab, songs)
    assert set(trie.allowed([])) == {lookup[0][0], lookup[0][1], eos}
    assert set(trie.allowed(spell((1, 0)))) == {lookup[0][0], eos}          # (1, 0) has one song, used
    assert set(trie.allowed(spell((1, 0), (0, 2)) + [lookup[0][0]])) == {lookup[1][1]}
    assert set(trie.allowed(spell((1, 0), (0, 2), (0, 1)) + [lookup[0][0]])) == {lookup[1][1]}  # two songs
    assert trie.allowed(spell((1, 0), (0, 2), (0, 1), (0, 1))) == [eos]      # every song asked for
    free = IdTrie(ids, vocab)
    assert set(free.allowed(spell((1, 0), (0, 2), (0, 1), (0, 1)))) == {lookup[0][0], lookup[0][1], eos}


def test_a_pretrained_t5_from_a_local_dir_is_fine_tuned_with_the_id_tokens(tmp_path):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({w for titles in THEMES.values() for title in titles for w in title.split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path / "tiny-t5"
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    T5ForConditionalGeneration(T5Config(vocab_size=len(vocab), d_model=32, d_kv=16, d_ff=64, num_layers=2,
                                        num_heads=2, pad_token_id=0, eos_token_id=1,
                                        decoder_start_token_id=0)).save_pretrained(folder)
    playlist_lake(tmp_path)
    ids_run = train("semantic_ids", dataset="toy", backbone="fake", codes="3,2")
    run = train("playlist", dataset="toy", semantic_ids=ids_run.run_id, model=str(folder), epochs=30,
                max_ids=4, beams=2, k=5, val=0.2, test=0.2)
    val = run.metrics["val"]
    assert val["invalid_rate"] == 0.0 and val["recall"] > 0.3, val
    checkpoint = torch.load(run.folder / "model.pt", weights_only=True)
    assert json.loads(checkpoint["t5_config"])["vocab_size"] == len(vocab) + 3 + 2  # one token per (level, code)
    assert Tokenizer.from_str(checkpoint["tokenizer"]).token_to_id("<c1_1>") == len(vocab) + 4

    from heads.playlist_generate import GenerateConfig, recommend
    rows, about = recommend(GenerateConfig(run=run.run_id, n=4), "quiet piano")
    assert about["ids"] > 0 and rows
    with pytest.raises(Exception, match="model=.*nowhere.*cannot load a T5"):
        train("playlist", dataset="toy", semantic_ids=ids_run.run_id, model=str(tmp_path / "nowhere"), epochs=1)
