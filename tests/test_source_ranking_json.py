"""The ranking_json source: seed 001's ranked groups, trailing commas and all."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.api import ingest
from ingest.ranking_json import strip_trailing_commas
from ingest.source import SourceError
from conftest import write_clip
from lake import catalog


RANKING = """[
  [ {"audio_file": "g1/a.wav", "score": 90, "singer": "ann, the alto]"},
    {"audio_file": "g1/b.wav", "score": 70.5, },
    {"audio_file": "g1/gone.wav", "score": 60},
    {"audio_file": "g1/c.wav", "score": "55"}, ],
  [ {"audio_file": "g2/d.wav", "note": "a comma, a brace } and a bracket ],"},
    {"audio_file": "g2/e.wav"},
    {"audio_file": "g1/a.wav"}, ],
  {"group_id": "song-7", "judge": "j2", "items": [
    {"audio_file": "./g3/f.wav", "score": 10, "label": 3},
    "g3/g.wav",
  ]},
]
"""


def rows(dataset: str) -> dict[str, dict]:
    table = catalog.connect().sql(f"SELECT * FROM tracks WHERE dataset = '{dataset}'").to_arrow_table()
    return {r["track_id"]: r for r in table.to_pylist()}


def test_groups_ranks_scores_and_skips(tmp_path):
    audio = tmp_path / "audio"
    for i, name in enumerate(["g1/a", "g1/b", "g1/c", "g2/d", "g2/e", "g3/f", "g3/g"]):
        write_clip(audio / f"{name}.wav", seconds=0.5, seed=i)
    ranking = audio / "ranking.json"
    ranking.write_text(RANKING)

    result = ingest("rank", source="ranking_json", path=ranking, workers=1)
    assert result.written == 7
    got = rows("rank")
    assert {k: (r["group_id"], r["rank"], r["score"]) for k, r in got.items()} == {
        "g1/a": ("g00000", 1, 90.0),
        "g1/b": ("g00000", 2, 70.5),
        "g1/c": ("g00000", 4, 55.0),  # rank is the written position: the missing file leaves a gap
        "g2/d": ("g00001", 1, None),
        "g2/e": ("g00001", 2, None),
        "g3/f": ("song-7", 1, 10.0),
        "g3/g": ("song-7", 2, None),
    }
    assert got["g1/a"]["singer"] == "ann, the alto]"
    assert got["g2/d"]["note"] == "a comma, a brace } and a bracket ],"
    assert got["g3/f"]["label"] == "3" and got["g3/f"]["judge"] == "j2" and got["g3/g"]["judge"] == "j2"
    assert got["g1/a"]["source"] == str(audio / "g1" / "a.wav")

    skipped = {Path(s["source"]).name: s["reason"] for s in result.skipped}
    assert set(skipped) == {"gone.wav", "a.wav"}
    assert "not found" in skipped["gone.wav"]
    assert skipped["a.wav"] == "also group g00000, rank 1; kept there, skipped as group g00001, rank 3"


def test_audio_root_option(tmp_path):
    write_clip(tmp_path / "wavs" / "x.wav", seconds=0.5, seed=1)
    ranking = tmp_path / "meta" / "r.json"
    ranking.parent.mkdir()
    ranking.write_text(json.dumps([[{"audio_file": "x.wav", "score": 1}]]))
    result = ingest("rooted", source="ranking_json", path=ranking, audio_root=tmp_path / "wavs", workers=1)
    assert result.written == 1 and rows("rooted")["x"]["rank"] == 1


def test_malformed_json_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  [ {"audio_file": "a.wav",, } ],\n]\n')
    with pytest.raises(SourceError, match=r"bad.json: malformed JSON at line 2, column 28"):
        ingest("bad", source="ranking_json", path=bad, workers=1)


def test_trailing_comma_repair_leaves_strings_alone():
    text = '{"a": "x,]", "b": [1, 2, ], "c": "\\",}", }'
    repaired = strip_trailing_commas(text)
    assert len(repaired) == len(text)
    assert json.loads(repaired) == {"a": "x,]", "b": [1, 2], "c": '",}'}
    assert strip_trailing_commas("[,]") == "[,]" and strip_trailing_commas('{"a": 1,,}') == '{"a": 1,,}'
