"""A planted lake for the dcas tests: culture in some vector dimensions, genre in others, and
synthetic interactions (lake.interactions.generate) where users prefer their own culture and
their liked genres — so content, DCAS and item-kNN have signal and culture leaks from raw vectors."""
from __future__ import annotations

import numpy as np

from heads.testing import write_embeddings, write_split, write_tracks
from lake import interactions

CULTURES = ("maqam", "raga", "west")
LABELS = ("folk", "rock", "jazz", "ambient")


def dcas_lake(dataset: str = "rec", n: int = 240, dim: int = 16, seed: int = 0, users_per_culture: int = 8,
              tracks_per_user: int = 20, popularity_alpha: float = 0.5, culture_strength: float = 3.0,
              genre_taste: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    culture = np.arange(n) % len(CULTURES)
    label = rng.integers(0, len(LABELS), n)
    centres_c = culture_strength * rng.standard_normal((len(CULTURES), dim // 2))
    centres_l = 3.0 * rng.standard_normal((len(LABELS), dim - dim // 2))
    X = np.concatenate([centres_c[culture], centres_l[label]], 1) + rng.standard_normal((n, dim))
    ids = [f"{dataset}_{i:05d}" for i in range(n)]
    write_tracks(dataset, [{"track_id": t, "culture": CULTURES[culture[i]], "label": LABELS[label[i]],
                            "title": f"song {i}", "collection": f"c{i % 2}", "shard": "s.tar", "key": f"k{i}", "offset": 0, "nbytes": 1,
                            "sha256": "0" * 64} for i, t in enumerate(ids)])
    parts = np.where(np.arange(n) % 5 < 3, "train", np.where(np.arange(n) % 5 == 3, "val", "test"))
    write_split(dataset, "default", dict(zip(ids, parts.tolist())))
    write_embeddings(dataset, "fake", ids, {"last": X.astype(np.float32)})
    assert interactions.main([f"dataset={dataset}", f"users_per_culture={users_per_culture}",
                              f"tracks_per_user={tracks_per_user}", f"popularity_alpha={popularity_alpha}",
                              f"genre_taste={genre_taste}", "taste_boost=20", f"seed={seed}"]) == 0
    assert interactions.main([f"dataset={dataset}", "split=last", "method=fraction", "fraction=0.2"]) == 0
    return {"ids": ids, "X": X, "culture": culture, "label": label}
