"""backbone=item2vec: word2vec over the playlists, stored and served like an audio backbone's vectors."""
from __future__ import annotations

import json
import numpy as np
import pytest

from embed.engine import EmbedRefused
from embed.item2vec import Item2VecConfig, run
from heads.data import Selection, SelectionError, load as load_selection
from heads.testing import write_embeddings, write_split, write_tracks
from ingest.api import ingest
from lake import catalog
from lake.cli import UsageError
from lake.embeddings import StaleVectors, load

GENRES = [[f"g{g}_{i}" for i in range(15)] for g in range(3)]
POOL = [s for genre in GENRES for s in genre]


def write_playlists(tmp_path, count: int = 300, extra: list | None = None) -> None:
    rng = np.random.default_rng(0)
    entries = []
    for i in range(count):
        songs = [str(s) for s in rng.choice(GENRES[i % 3], 5, replace=False)]
        if i % 6 < 3:
            songs[int(rng.integers(6)):0] = ["a", "b"]  # a and b always together, in every genre
        entries.append({"playlist_id": f"p{i:04d}", "title": f"mix {i}", "tracks": songs})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(entries + (extra or [])))
    ingest("mix", source="playlists", path=path)


def small(**keys) -> Item2VecConfig:
    return Item2VecConfig(dataset="mix", **{"dim": 16, "window": 5, "min_count": 1, "epochs": 20, **keys})


def test_songs_that_always_cooccur_are_near(tmp_path):
    write_playlists(tmp_path)
    result = run(small())
    assert result.status == "written" and result.rare == 0 and result.songs == len(POOL) + 2
    assert result.without_audio == result.songs  # no tracks yet: stored, not served
    write_tracks("mix", [{"track_id": t} for t in POOL + ["a", "b"]])
    stored = load("mix", "item2vec", label=None)
    ids = list(stored.track_ids)
    centred = stored.matrix - stored.matrix.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    together = float(unit[ids.index("a")] @ unit[ids.index("b")])
    others = [float(unit[ids.index("a")] @ unit[ids.index(x)]) for x in POOL]
    assert together > max(others), (together, max(others))


def test_vectors_join_audio_tracks_by_id_and_a_track_without_plays_is_named(tmp_path):
    write_playlists(tmp_path)
    run(small())
    audio = POOL[:30] + ["a", "silent"]  # "silent" has audio but is in no playlist
    write_tracks("mix", [{"track_id": t, "label": "x"} for t in audio])
    write_split("mix", "default", {t: ("train", "val", "test")[i % 3] for i, t in enumerate(audio)})
    write_embeddings("mix", "fake", audio, {"last": np.eye(len(audio), 4, dtype=np.float32)})
    stored = load("mix", "item2vec", label=None)
    assert sorted(stored.track_ids) == sorted(audio[:-1])  # served: the songs with a track; stored: all 47
    with pytest.raises(SelectionError, match="learned from the playlists.*min_count"):
        load_selection(Selection(dataset="mix", backbone=("item2vec",)))
    covered = "track_id IN (SELECT track_id FROM embeddings WHERE backbone = 'item2vec')"
    data = load_selection(Selection(dataset="mix", backbone=("item2vec", "fake"), where=covered))
    assert list(data.track_ids) == sorted(audio[:-1]) and data.features(data.layers[0]).shape == (31, 20)


def test_changed_playlists_make_the_vectors_stale_until_trained_again(tmp_path):
    write_playlists(tmp_path)
    write_tracks("mix", [{"track_id": t} for t in POOL])
    first = run(small())
    again = run(small())
    assert again.status == "unchanged" and again.songs == first.songs
    write_playlists(tmp_path, extra=[{"playlist_id": "z", "title": "new", "tracks": ["g0_1", "new_song"]}])
    with pytest.raises(StaleVectors, match="learned from the playlists of mix, which have changed since: run just embed"):
        load("mix", "item2vec", label=None)
    assert load("mix", "item2vec", label=None, stale="skip").matrix.shape[0] == 0
    retrained = run(small())
    assert retrained.status == "written" and retrained.songs == first.songs + 1  # new_song
    assert load("mix", "item2vec", label=None).matrix.shape == (len(POOL), 16)
    assert catalog.connect().execute("SELECT count(*) FROM embeddings WHERE backbone = 'item2vec'").fetchone()[0] == len(POOL)


def test_other_settings_under_the_name_are_refused_and_the_cli_runs(tmp_path, capsys):
    write_playlists(tmp_path, count=60)
    run(small())
    with pytest.raises(EmbedRefused, match="dim=16 \\(now 8\\)"):
        run(small(dim=8))
    from embed.__main__ import main
    assert main(["dataset=mix", "backbone=item2vec", "name=i2v8", "dim=8", "min_count=1", "epochs=2"]) == 0
    assert "song vectors (8-d)" in " ".join(capsys.readouterr().err.split())
    row = catalog.connect().execute("SELECT dim, settings FROM backbones WHERE backbone = 'i2v8'").fetchone()
    assert row[0] == 8 and json.loads(row[1])["window"] == "50"  # the seed's window unless given
    with pytest.raises(UsageError, match="unknown key layers="):
        main(["dataset=mix", "backbone=item2vec", "layers=all"])
