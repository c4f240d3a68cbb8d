"""item2vec: song vectors from co-occurrence in playlists (word2vec over playlists, gensim),
written into `embeddings` under backbone `item2vec`, like any audio backbone's vectors.

    python -m heads.playlist_item2vec dataset=NAME [dim=512 window=50 min_count=10 epochs=20 seed=0]

Defaults are seed 004's: skip-gram, 512-d, window 50, min count 10, 20 epochs. Each playlist is
a sentence of its track ids in order. Songs seen fewer than `min_count` times get no vector
(counted); songs without audio do get one (no sha256 is stored, so they match on id alone).
Semantic IDs can then come from audio, from co-occurrence, or both (`backbone=item2vec,muq`).

Why not an `embed/registry.py` entry: a registry backbone embeds one clip at a time from the
shards; item2vec is trained over the whole playlists table and reads no audio, so it is its
own command that writes the same table and the same `backbones` provenance row.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from embed import store
from lake import catalog, paths, versions
from lake.cli import UsageError, key_values, make_console, parse_config, run_main

BACKBONE = "item2vec"
SHARD = "playlists/item2vec/item2vec.tar"  # names the part file; there is no shard behind it


@dataclass
class Item2VecConfig:
    dataset: str
    dim: int = 512
    window: int = 50
    min_count: int = 10
    epochs: int = 20
    sg: bool = True          # skip-gram (the seed's); false: CBOW
    negative: int = 5
    seed: int = 0
    workers: int = 1         # >1 is faster but gensim is then not reproducible run to run

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        for key in ("dim", "window", "min_count", "epochs", "workers"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be at least 1")


def sentences(dataset: str) -> list[list[str]]:
    rows = catalog.connect().execute(
        "SELECT list(track_id ORDER BY position) FROM playlists WHERE dataset = $d GROUP BY playlist_id "
        "ORDER BY playlist_id", {"d": dataset}).fetchall()
    return [r[0] for r in rows]


def train(cfg: Item2VecConfig) -> tuple[list[str], np.ndarray, int]:
    """(track ids, float32 [n, dim] vectors, songs below min_count)."""
    from gensim.models import Word2Vec

    corpus = sentences(cfg.dataset)
    if not corpus:
        raise UsageError(f"dataset={cfg.dataset} has no playlists: just ingest dataset={cfg.dataset} source=playlists path=DIR")
    model = Word2Vec(corpus, vector_size=cfg.dim, window=cfg.window, min_count=cfg.min_count, sg=int(cfg.sg),
                     negative=cfg.negative, epochs=cfg.epochs, seed=cfg.seed, workers=cfg.workers)
    ids = sorted(model.wv.key_to_index)
    songs = {t for s in corpus for t in s}
    return ids, model.wv[ids].astype(np.float32), len(songs) - len(ids)


def write(cfg: Item2VecConfig, ids: list[str], vectors: np.ndarray) -> None:
    settings = json.dumps(asdict(cfg), sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()
    target = store.part_path(cfg.dataset, BACKBONE, SHARD)
    target.unlink(missing_ok=True)  # a retrain replaces the vectors, never merges with the old ones
    store.write_part(target, cfg.dataset, BACKBONE, cfg.dim, {"last": (ids, [None] * len(ids), vectors)},
                     SHARD, [], digest)
    store.write_backbone({"backbone": BACKBONE, "spec": BACKBONE, "model_id": "gensim Word2Vec over playlists",
                          "revision": digest[:16], "sample_rate": None, "dim": cfg.dim, "layers": ["last"],
                          "pooling": "none", "max_seconds": None, "chunking": "none", "precision": "fp32",
                          "settings": settings, "packages": json.dumps(versions.package_versions("gensim", "numpy"))})
    catalog.refresh()


def main(argv: list[str]) -> int:
    cfg = parse_config(Item2VecConfig, key_values(argv))
    ids, vectors, rare = train(cfg)
    write(cfg, ids, vectors)
    make_console(stderr=True).print(f"{cfg.dataset}: item2vec vectors for {len(ids):,} songs ({cfg.dim}-d), "
                                    f"{rare:,} songs under min_count={cfg.min_count} left without one", highlight=False)
    return 0


if __name__ == "__main__":
    run_main(main)
