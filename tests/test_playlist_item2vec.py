"""item2vec: songs that always appear together get near vectors, stored as a backbone."""
from __future__ import annotations

import json

import numpy as np

from heads.playlist_item2vec import Item2VecConfig, train, write
from heads.testing import write_split, write_tracks
from ingest.api import ingest
from lake.embeddings import load


def test_songs_that_always_cooccur_are_near(tmp_path):
    rng = np.random.default_rng(0)
    genres = [[f"g{g}_{i}" for i in range(15)] for g in range(3)]
    pool = [s for genre in genres for s in genre]
    entries = []
    for i in range(300):
        songs = list(rng.choice(genres[i % 3], 5, replace=False))
        if i % 6 < 3:
            songs[int(rng.integers(6)):0] = ["a", "b"]  # a and b always together, in every genre
        entries.append({"playlist_id": f"p{i}", "title": f"mix {i}", "tracks": [str(s) for s in songs]})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(entries))
    ingest("mix", source="playlists", path=path)
    cfg = Item2VecConfig(dataset="mix", dim=16, window=5, min_count=1, epochs=20)
    ids, vectors, rare = train(cfg)
    assert rare == 0
    centred = vectors - vectors.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    pos = {t: i for i, t in enumerate(ids)}
    together = float(unit[pos["a"]] @ unit[pos["b"]])
    others = [float(unit[pos["a"]] @ unit[pos[x]]) for x in pool]
    assert together > max(others), (together, max(others))

    write_tracks("mix", [{"track_id": t} for t in ids])  # as if their audio were ingested: ids join
    write_split("mix", "default", {t: "train" for t in ids})
    write(cfg, ids, vectors)
    stored = load("mix", "item2vec")
    assert stored.matrix.shape == (len(ids), 16)
