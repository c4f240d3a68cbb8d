"""The term_chunks source and the glossary table: seed 003's JSON shapes as they come."""
from __future__ import annotations

import json

from conftest import write_clip
from ingest.api import ingest
from ingest.glossary import keep_term, normal
from lake import catalog


def rows(sql: str) -> list[dict]:
    return catalog.connect().sql(sql).to_arrow_table().to_pylist()


def test_chunks_with_and_without_terms_aliases_and_a_missing_file(tmp_path):
    data = tmp_path / "data"
    for i, name in enumerate(["a", "b", "c", "d", "e"]):
        write_clip(data / "chunks" / f"{name}.wav", seconds=0.4, seed=i)
    shard1 = [
        {"term_chunk_audio": "chunks/a.wav", "term_chunk_text": "the  Transformer model",
         "term_chunk_audio_ground_truth_terms": ["Transformer", "TRANSFORMERS"], "speaker_id": "s1", "begin": 1.5},
        {"term_chunk_audio": "chunks/b.wav", "term_chunk_text": "nothing here",
         "term_chunk_audio_ground_truth_terms": []},
        {"term_chunk_audio": "chunks/gone.wav", "term_chunk_text": "lost", "term_chunk_audio_ground_truth_terms": ["BERT"]},
        {"term_chunk_text": "no audio key"},
    ]
    shard2 = [
        {"term_chunk_audio": str(data / "chunks" / "c.wav"), "term_chunk_text": "a gpu and 2024 and an LSTM",
         "term_chunk_audio_ground_truth_terms": ["GPU", "2024", "ab", "long short-term memory"]},
        {"term_chunk_audio": "chunks/d.wav"},   # no text, no terms key
        {"term_chunk_audio": "chunks/e.wav", "term_chunk_audio_ground_truth_terms": "not a list?"},
    ]
    (data / "term_level_chunks_0_2.json").write_text(json.dumps(shard1))
    (data / "term_level_chunks_2_4.json").write_text(json.dumps(shard2))
    glossary = data / "glossary_filtered.json"
    glossary.write_text(json.dumps({"Transformer": {"description": "an attention model"}, "GPU": "a processor",
                                    "Long Short-Term Memory": {}, "12345": None}))
    aliases = data / "alt2main.json"
    aliases.write_text(json.dumps({"transformers": "transformer", "LSTM": "long short-term memory"}))
    term_set = data / "term_set.txt"
    term_set.write_text("beam search\n\n# comment\nxy\n")

    result = ingest("terms", source="term_chunks", path=str(data), glossary=glossary, aliases=aliases,
                    terms=term_set, workers=1)
    got = {r["track_id"]: r for r in rows("SELECT * FROM tracks WHERE dataset = 'terms'")}
    assert set(got) == {"chunks/a", "chunks/b", "chunks/c", "chunks/d"}
    assert got["chunks/a"]["terms"] == ["transformer"]          # alias and case → one main term
    assert got["chunks/a"]["text"] == "the  Transformer model"  # the text as given
    assert got["chunks/a"]["speaker_id"] == "s1" and got["chunks/a"]["begin"] == 1.5
    assert got["chunks/b"]["terms"] == []
    assert got["chunks/c"]["terms"] == ["gpu", "long short-term memory"]  # "2024" and "ab" filtered out
    assert got["chunks/d"]["terms"] == [] and got["chunks/d"]["text"] is None
    reasons = {s["source"]: s["reason"] for s in result.skipped}
    assert any("gone.wav" in s and "not found" in r for s, r in reasons.items())
    assert any("term_chunk_audio" in r for r in reasons.values())
    assert any("e.wav" in s and "not a list" in r for s, r in reasons.items())
    assert "chunks/e" not in got
    assert any("2024" in n["note"] for n in result.notes)

    table = {r["term"]: r for r in rows("SELECT * FROM glossary WHERE dataset = 'terms'")}
    assert table["transformers"]["main_term"] == "transformer"
    assert table["lstm"]["main_term"] == "long short-term memory"
    assert table["transformer"]["description"] == "an attention model"
    assert table["transformers"]["description"] == "an attention model"
    assert table["gpu"]["description"] == "a processor"
    assert "beam search" in table and "xy" not in table and "12345" not in table
    assert table["bert"]["main_term"] == "bert"  # a term a chunk names joins the glossary


def test_normalisation_and_the_seeds_filter():
    assert normal("  Deep\tLEARNING ") == "deep learning"
    assert keep_term("gpu") and not keep_term("ab") and not keep_term("2024") and keep_term("gpt-4")


def test_term_coverage_query_lists_unspoken_terms_first(tmp_path):
    from lake import queries

    write_clip(tmp_path / "a.wav", seconds=0.3)
    (tmp_path / "chunks.json").write_text(json.dumps([
        {"term_chunk_audio": "a.wav", "term_chunk_audio_ground_truth_terms": ["Beam Search"]}]))
    (tmp_path / "glossary.json").write_text(json.dumps({"beam search": "a decoder", "kernel": {}}))
    ingest("cov", source="term_chunks", path=tmp_path / "chunks.json", glossary=tmp_path / "glossary.json", workers=1)
    text = queries.resolve("term_coverage").read_text()
    assert text.startswith("-- purpose: ") and "-- $dataset: " in text
    rows = queries.run_file(catalog.connect(), "term_coverage", dataset="cov").to_pylist()
    assert rows == [{"main_term": "kernel", "description": None, "chunks": 0},
                    {"main_term": "beam search", "description": "a decoder", "chunks": 1}]


def test_silent_nan_and_undecodable_chunks_are_reported_not_dropped_silently(tmp_path):
    import numpy as np
    import soundfile as sf

    data = tmp_path / "data"
    write_clip(data / "ok.wav", seconds=0.4)
    sf.write(data / "silent.wav", np.zeros(6400, np.float32), 16000)
    nan = np.full(6400, 0.1, np.float32)
    nan[100] = np.nan
    sf.write(data / "nan.wav", nan, 16000, subtype="FLOAT")
    (data / "broken.wav").write_bytes(b"RIFF not really a wave file")
    chunks = [{"term_chunk_audio": f"{name}.wav", "term_chunk_text": name, "term_chunk_audio_ground_truth_terms": ["gpu"]}
              for name in ("ok", "silent", "nan", "broken")]
    (data / "chunks.json").write_text(json.dumps(chunks))
    result = ingest("bad", source="term_chunks", path=data / "chunks.json", workers=1)
    skipped = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in result.skipped}
    assert set(skipped) == {"nan.wav", "broken.wav"} and "NaN" in skipped["nan.wav"]
    assert [f["track_id"] for f in result.flagged] == ["silent"]  # kept, with the validator's flag
    assert {r["track_id"] for r in rows("SELECT track_id FROM tracks WHERE dataset = 'bad'")} == {"ok", "silent"}
