"""`backbone=item2vec`: song vectors from co-occurrence in playlists, not from audio (seed 004).

    just embed dataset=NAME backbone=item2vec [dim=512 window=50 min_count=10 epochs=20 seed=0] [name=]

word2vec (gensim) over the dataset's `playlists` table, each playlist a sentence of its track
ids in order; the defaults are the seed's (skip-gram, 512-d, window 50, min count 10, 20
epochs). The vectors go into `embeddings` like any backbone's, one part for the dataset
(`part-playlists-item2vec.parquet`, layer `last`), with a `backbones` provenance row holding the
settings, so `head=semantic_ids backbone=item2vec` (or `backbone=item2vec,muq`, fused by
track_id) reads them like audio vectors.

Which songs get one: every song in at least `min_count` playlist slots, audio or not; no
sha256 is stored, so a vector joins a track on its id alone, and readers serve the ones whose
track is in `tracks` (a song whose audio is ingested later joins then). A track in no playlist,
or in too few, has none: a head that selects it is refused with a line saying so.

When the vectors count as done: the part records the digest of the playlists it was trained
on (lake.corpus). The same settings and the same playlists: nothing to do. Changed playlists:
the whole model is trained again (word2vec is not incremental) and the part replaced; until
then `lake.embeddings.load` refuses the old vectors as stale. Other settings under the same
name are refused, as for audio backbones (the name's settings are shared by every dataset:
pass name=NEW_NAME); force=true trains again with the same settings.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from rich.console import Console

from embed import store
from embed.engine import EmbedRefused, job_lock
from embed.shard import refuse_other_settings
from lake import catalog, corpus, paths, versions

PRECISIONS = ("fp32",)
SHARD = "playlists/item2vec.tar"   # names the part (part-playlists-item2vec.parquet); no shard behind it
LAYER = "last"


def load(request):  # noqa: ANN001, ANN201 - the registry's contract for audio backbones
    raise ValueError(f"{request.backbone} learns from the playlists table, not from audio: "
                     f"just embed dataset=NAME backbone={request.backbone} trains it")


@dataclass
class Item2VecConfig:
    dataset: str
    backbone: str = "item2vec"
    name: str = ""           # stored under this name; default item2vec
    dim: int = 512
    window: int = 50
    min_count: int = 10      # playlist slots a song needs to get a vector
    epochs: int = 20
    sg: bool = True          # skip-gram (the seed's); false: CBOW
    negative: int = 5
    seed: int = 0
    workers: int = 1         # gensim threads: >1 is faster but not reproducible run to run
    force: bool = False      # train again even when the playlists and settings are unchanged

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        if self.backbone != "item2vec":
            raise ValueError(f"backbone={self.backbone}: this job trains item2vec only")
        self.name = paths.check_name("name", self.name or self.backbone)
        for key in ("dim", "window", "min_count", "epochs", "negative", "workers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not value >= 1:
                raise ValueError(f"{key}={value}: must be a whole number, 1 or more")

    def vector_settings(self) -> dict[str, str]:
        """Every option that changes the vectors (what a stored name keeps one set of)."""
        return {"backbone": self.backbone, "dim": str(self.dim), "window": str(self.window),
                "min_count": str(self.min_count), "epochs": str(self.epochs), "sg": str(self.sg).lower(),
                "negative": str(self.negative), "seed": str(self.seed)}

    @property
    def settings(self) -> str:  # what refuse_other_settings reads, as for a ShardSettings
        return json.dumps(self.vector_settings(), sort_keys=True)

    def settings_hash(self) -> str:
        return hashlib.sha256(self.settings.encode()).hexdigest()[:16]


@dataclass
class Item2VecResult:
    dataset: str
    name: str
    status: Literal["written", "unchanged"]
    songs: int = 0           # vectors stored
    rare: int = 0            # songs under min_count: no vector
    without_audio: int = 0   # of the stored, songs with no `tracks` row (served once they have one)
    playlists: int = 0
    seconds: float = 0.0
    part: str = ""


def train(cfg: Item2VecConfig, sentences: list[list[str]]) -> tuple[list[str], np.ndarray, int]:
    """(track ids sorted, float32 [n, dim] vectors, songs under min_count)."""
    from gensim.models import Word2Vec

    model = Word2Vec(sentences, vector_size=cfg.dim, window=cfg.window, min_count=cfg.min_count, sg=int(cfg.sg),
                     negative=cfg.negative, epochs=cfg.epochs, seed=cfg.seed, workers=cfg.workers)
    ids = sorted(model.wv.key_to_index)
    songs = {t for s in sentences for t in s}
    vectors = model.wv[ids].astype(np.float32) if ids else np.empty((0, cfg.dim), np.float32)
    return ids, vectors, len(songs) - len(ids)


def part_path(cfg: Item2VecConfig) -> Path:
    return store.part_path(cfg.dataset, cfg.name, SHARD)


def is_current(cfg: Item2VecConfig, digest: str) -> bool:
    """The part was trained with these settings on these playlists, and the name's row exists."""
    part = part_path(cfg)
    if part not in store.list_parts(cfg.dataset, cfg.name) or store.read_backbone(cfg.name) is None:
        return False
    contents = store.part_contents(part)
    return contents.settings == cfg.settings_hash() and contents.corpus == digest


def claim_name(cfg: Item2VecConfig) -> None:
    """The name's provenance row, written once; other settings under the name are refused."""
    with store.backbone_lock(cfg.name):
        stored = store.read_backbone(cfg.name)
        refuse_other_settings(cfg, stored)
        if stored is None:
            store.write_backbone({
                "backbone": cfg.name, "spec": cfg.backbone, "model_id": "gensim Word2Vec over playlists",
                "revision": cfg.settings_hash(), "sample_rate": None, "dim": cfg.dim, "layers": [LAYER],
                "pooling": "none", "max_seconds": None, "chunking": "none", "precision": "fp32",
                "settings": cfg.settings,
                "packages": json.dumps(versions.package_versions("gensim", "numpy"), sort_keys=True)})


def run(cfg: Item2VecConfig, console: Console | None = None) -> Item2VecResult:
    started = time.perf_counter()
    with job_lock(cfg):
        refuse_other_settings(cfg, store.read_backbone(cfg.name))  # early, before any training
        table = corpus.playlist_sentences(cfg.dataset)
        if table.num_rows == 0:
            raise EmbedRefused(f"dataset {cfg.dataset!r} has no playlists, which item2vec learns from: "
                               f"just ingest dataset={cfg.dataset} source=playlists path=DIR")
        digest = corpus.digest(table)
        result = Item2VecResult(cfg.dataset, cfg.name, "unchanged", playlists=table.num_rows)
        if not cfg.force and is_current(cfg, digest):
            result.songs = len(store.part_contents(part_path(cfg)).pairs)
        else:
            sentences = table.column("tracks").to_pylist()
            ids, vectors, result.rare = train(cfg, sentences)
            if not ids:
                raise EmbedRefused(f"no song of {cfg.dataset} is in min_count={cfg.min_count} playlist slots: "
                                   "no vector to store (lower min_count=)")
            claim_name(cfg)
            target = part_path(cfg)
            target.unlink(missing_ok=True)  # a retrain replaces the vectors, never merges with old ones
            store.write_part(target, cfg.dataset, cfg.name, cfg.dim, {LAYER: (ids, [None] * len(ids), vectors)},
                             SHARD, [], cfg.settings_hash(), corpus=digest)
            result.status, result.songs, result.part = "written", len(ids), str(target)
        result.without_audio = without_tracks(cfg.dataset, part_path(cfg))
    catalog.refresh()
    result.seconds = time.perf_counter() - started
    return result


def without_tracks(dataset: str, part: Path) -> int:
    con = catalog.connect()
    con.register("stored_ids", pa.table({"track_id": pa.array(sorted(t for t, _ in store.part_contents(part).pairs))}))
    return con.execute("SELECT count(*) FROM stored_ids WHERE track_id NOT IN "
                       "(SELECT track_id FROM tracks WHERE dataset = $d)", {"d": dataset}).fetchone()[0]


def summary(result: Item2VecResult, cfg: Item2VecConfig, console: Console) -> None:
    audio = (f"; {result.without_audio:,} of them have no track in tracks yet (served once their track is ingested)"
             if result.without_audio else "")
    if result.status == "unchanged":
        console.print(f"[green]{cfg.dataset} · {cfg.name}[/]: {result.songs:,} song vectors already trained on these "
                      f"{result.playlists:,} playlists with these settings, nothing to do (force=true retrains){audio}",
                      highlight=False)
        return
    console.print(f"[green]{cfg.dataset} · {cfg.name}[/]: word2vec over {result.playlists:,} playlists in "
                  f"{result.seconds:.1f} s: {result.songs:,} song vectors ({cfg.dim}-d), {result.rare:,} songs under "
                  f"min_count={cfg.min_count} left without one{audio}", highlight=False)
    console.print(f"wrote {result.part}", highlight=False)
