"""The playlist head (seed 004, stages 2–4): a playlist from its title, as semantic-ID clusters.

    just train head=semantic_ids dataset=NAME backbone=B codes=256,256,256
    just train head=playlist dataset=NAME semantic_ids=latest
    just playlist run=latest dataset=NAME "quiet piano for study" n=20 seed=0

Data: the dataset's `playlists` rows and the codes a head=semantic_ids run wrote (`semantic_ids=`
a run id or latest; the backbone defaults to that run's). Songs without codes are dropped from
the targets and counted; playlists left with fewer than `min_songs` coded songs too.
Playlists are split by a hash of their id (`val=`, `test=` fractions), not by the tracks'
split: the songs are the vocabulary, the playlists are the examples.

Model (heads/playlist_model.py): a T5 trained on title → the playlist's ID tokens (L per
song, in order, duplicates kept): a pretrained one fine-tuned (`model=` a hub id or local
dir, its tokenizer with the ID tokens added), or by default a small one from scratch with a BPE
tokenizer trained on the training titles. Beam search constrained by a trie of existing IDs
(`constrained=false` to measure the invalid-ID rate without it); the trie also lets an ID
recur at most as many times as its cluster has songs (`cap_repeats=false` lifts that): a
repeat still weighs a cluster, as the seed intends, but never asks for a song that is not
there. Recommendation: each generated ID expanded to its cluster's songs and one song
sampled per ID (seeded, never one already picked), up to `k`.

Metrics on val/test (heads/playlist_metrics.py): set precision/recall/F1 of the expanded
clusters (the seed's metric), Recall@k/NDCG@k of the sampled list, the invalid-ID rate
(0 with the trie), diversity (distinct IDs / generated IDs), and the same set and ranked
metrics for two baselines: popularity (the k songs in most training playlists) and title
nearest-neighbour (TF-IDF over title character n-grams, the songs of the 5 nearest training
playlists).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from heads import playlist_metrics as pm
from heads import playlist_model as model_lib
from heads.data import Data, Selection, SelectionError
from heads.protocol import Description, Inputs, Metric, Trained
from lake import catalog

HEADLINE = (
    Metric("f1", "set F1", "max", about="clusters expanded to songs vs the real playlist (seed 004)"),
    Metric("ndcg_at_k", "NDCG@k", "max"),
    Metric("invalid_rate", "invalid IDs", "min", ".3f", short="invalid"),
    Metric("popularity_f1", "popularity F1", "none", short="pop F1"),
    Metric("title_nn_f1", "title-NN F1", "none", short="NN F1"),
)
COUNTS: tuple[str, ...] = ()


@dataclass
class Config(Selection):
    backbone: tuple[str, ...] = ()   # default: the semantic_ids run's
    target: str = "playlist"
    semantic_ids: str = "latest"     # the head=semantic_ids run whose codes are learned
    val: float = 0.1                 # fraction of playlists held out for val, by a hash of their id
    test: float = 0.1
    min_songs: int = 2               # coded songs a playlist needs
    max_ids: int = 20                # IDs per target sequence (the seed: 384 tokens)
    max_title: int = 32              # title tokens
    model: str = ""                  # a pretrained T5 (hub id or local dir) to fine-tune; "": a small one from scratch
    vocab: int = 2000                # from scratch: BPE merges on the titles
    d_model: int = 64                # from scratch: the T5's size
    layers: int = 2
    heads: int = 4
    epochs: int = 40
    batch: int = 32
    lr: float = 3e-3
    beams: int = 4
    k: int = 20                      # songs per recommended list (Recall@k, NDCG@k)
    constrained: bool = True         # trie-constrained decoding
    cap_repeats: bool = True         # with the trie: an ID at most as often as its cluster has songs

    def __post_init__(self) -> None:
        if isinstance(self.backbone, str):
            self.backbone = tuple(b for b in self.backbone.split(",") if b.strip())
        if self.dataset and (not self.backbone or self.semantic_ids == "latest"):
            run_id, backbones = semantic_ids_run(self.dataset, self.semantic_ids)
            self.semantic_ids = run_id
            self.backbone = self.backbone or tuple(backbones)
        super().__post_init__()
        if not (0 < self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ValueError(f"val={self.val} test={self.test}: fractions with val > 0 and val + test < 1")
        for key in ("min_songs", "max_ids", "max_title", "d_model", "layers", "heads", "epochs", "batch", "beams", "k"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be at least 1")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of heads={self.heads}")

    @property
    def variant(self) -> str:
        return (f"ids={self.semantic_ids}" + (f" model={self.model}" if self.model else "")
                + ("" if self.constrained else " unconstrained") + ("" if self.cap_repeats else " repeats"))


def semantic_ids_run(dataset: str, run: str) -> tuple[str, list[str]]:
    con = catalog.connect()
    if run == "latest":
        found = con.execute("SELECT run_id, backbones FROM runs WHERE head = 'semantic_ids' AND dataset = $d "
                            "ORDER BY created_at DESC LIMIT 1", {"d": dataset}).fetchall()
        if not found:
            raise ValueError(f"semantic_ids=latest: no head=semantic_ids run on dataset {dataset}: "
                             f"run just train head=semantic_ids dataset={dataset} backbone=...")
    else:
        found = con.execute("SELECT run_id, backbones FROM runs WHERE run_id = $r AND head = 'semantic_ids'",
                            {"r": run}).fetchall()
        if not found:
            raise ValueError(f"semantic_ids={run}: not a head=semantic_ids run (just runs lists them)")
    return found[0][0], list(found[0][1])


@dataclass
class Playlists:
    """The examples: titles, coded songs (as ID rows), truth sets, the hash split, the clusters."""
    ids: list[str]
    titles: list[str]
    songs: list[list[str]]           # coded songs in playlist order
    codes: list[np.ndarray]          # [songs, levels] per playlist
    part: np.ndarray                 # train | val | test per playlist
    clusters: dict[tuple[int, ...], list[str]]  # ID → its songs (every coded song of the run)
    all_ids: np.ndarray              # [ids, levels] distinct existing IDs
    sizes: tuple[int, ...]           # codes per level (max code + 1)
    dropped_songs: int
    dropped_playlists: int


def _hash_part(playlist_id: str, val: float, test: float) -> str:
    u = int.from_bytes(hashlib.sha256(playlist_id.encode()).digest()[:8], "big") / 2 ** 64
    return "test" if u < test else "val" if u < test + val else "train"


def codes_table(run_id: str) -> pa.Table:
    """(track_id, codes) the semantic_ids run wrote, by track id."""
    return catalog.connect().sql("SELECT track_id, codes FROM semantic_ids WHERE run_id = $r ORDER BY track_id",
                                 params={"r": run_id}).to_arrow_table()


def codes_by_track(table: pa.Table) -> dict[str, tuple[int, ...]]:
    return {t: tuple(c) for t, c in zip(table.column("track_id").to_pylist(), table.column("codes").to_pylist())}


def load_codes(run_id: str) -> dict[str, tuple[int, ...]]:
    return codes_by_track(codes_table(run_id))


def playlist_table(dataset: str) -> pa.Table:
    """(playlist_id, title, tracks in playlist order), by playlist id."""
    return catalog.connect().sql(
        "SELECT playlist_id, min(title) AS title, list(track_id ORDER BY position, track_id) AS tracks FROM playlists "
        "WHERE dataset = $d GROUP BY playlist_id ORDER BY playlist_id", params={"d": dataset}).to_arrow_table()


def clusters_of(codes: dict[str, tuple[int, ...]]) -> dict[tuple[int, ...], list[str]]:
    out: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for track, code in sorted(codes.items()):
        out[code].append(track)
    return dict(out)


def playlists(cfg: Config, table: pa.Table, code_rows: pa.Table) -> Playlists:
    codes = codes_by_track(code_rows)
    if not codes:
        raise SelectionError(f"semantic_ids={cfg.semantic_ids}: the run wrote no codes")
    rows = list(zip(*(table.column(c).to_pylist() for c in ("playlist_id", "title", "tracks"))))
    if not rows:
        raise SelectionError(f"dataset={cfg.dataset} has no playlists: just ingest dataset={cfg.dataset} "
                             "source=playlists path=DIR")
    out = Playlists([], [], [], [], np.array([], str), clusters_of(codes), np.array([]), (), 0, 0)
    parts = []
    for pid, title, tracks in rows:
        coded = [t for t in tracks if t in codes]
        out.dropped_songs += len(tracks) - len(coded)
        if len(coded) < cfg.min_songs:
            out.dropped_playlists += 1
            continue
        out.ids.append(pid)
        out.titles.append(title)
        out.songs.append(coded)
        out.codes.append(np.array([codes[t] for t in coded], np.int64))
        parts.append(_hash_part(pid, cfg.val, cfg.test))
    out.part = np.array(parts, dtype=str)
    out.all_ids = np.array(sorted(out.clusters), np.int64)
    out.sizes = tuple(int(m) + 1 for m in out.all_ids.max(axis=0))
    if not np.any(out.part == "train") or not np.any(out.part == "val"):
        raise SelectionError(f"dataset={cfg.dataset}: {len(out.ids)} usable playlists leave no train or no val "
                             f"playlists (val={cfg.val}); ingest more playlists or raise val=")
    return out


def inputs(cfg: Config) -> Inputs:
    return Inputs()


def _data(cfg: Config, data: Data) -> Playlists:
    """The examples, read once per run; both tables they come from go into the run's fingerprint."""
    if "playlists" not in data.memo:
        table, codes = playlist_table(cfg.dataset), codes_table(cfg.semantic_ids)
        data.cover("playlists", table)
        data.cover("semantic_ids", codes)
        data.memo["playlists"] = playlists(cfg, table, codes)
    return data.memo["playlists"]


def describe(cfg: Config, data: Data) -> Description:
    p = _data(cfg, data)
    counts = {part: int(np.sum(p.part == part)) for part in ("train", "val", "test")}
    facts = {"playlists": counts, "ids": int(len(p.all_ids)), "coded_songs": sum(len(v) for v in p.clusters.values()),
             "dropped_songs_without_codes": p.dropped_songs, "dropped_playlists": p.dropped_playlists,
             "semantic_ids": cfg.semantic_ids}
    return Description(line=f"{len(p.ids)} playlists ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
                            f"{len(p.all_ids)} IDs", facts=facts)


class PlaylistModel:
    """T5 title → IDs; hyperparameters in the constructor, learned state ends in `_`."""

    def __init__(self, cfg: Config, seed: int, sizes: tuple[int, ...]):
        self.cfg, self.seed, self.sizes = cfg, seed, sizes

    def fit(self, titles: list[str], codes: list[np.ndarray], all_ids: np.ndarray,
            songs: np.ndarray) -> "PlaylistModel":
        """`all_ids` the existing IDs, `songs` how many songs each has."""
        torch.set_num_threads(1)  # small steps: a second thread only adds contention (as the scorer does)
        if self.cfg.model:
            try:
                self.model_, tokenizer = model_lib.pretrained_t5(self.cfg.model, self.sizes)
            except ValueError as err:
                raise SelectionError(str(err)) from None
        else:
            tokenizer = model_lib.train_tokenizer(titles, self.sizes, self.cfg.vocab)
        self.vocab_ = model_lib.Vocabulary(tokenizer, self.sizes)
        self.trie_ = model_lib.IdTrie(all_ids, self.vocab_, songs if self.cfg.cap_repeats else None)
        if not self.cfg.model:
            self.model_ = model_lib.small_t5(self.vocab_.size, self.cfg.d_model, self.cfg.layers, self.cfg.heads,
                                             self.seed)
        x = self.vocab_.encode_titles(titles, self.cfg.max_title)
        y = [self.vocab_.target(c, self.cfg.max_ids) for c in codes]
        self.losses_ = model_lib.fit(self.model_, x, y, self.cfg.epochs, self.cfg.batch, self.cfg.lr, self.seed)
        return self

    def generate_ids(self, titles: list[str], constrained: bool | None = None) -> list[list[tuple[int, ...] | None]]:
        constrained = self.cfg.constrained if constrained is None else constrained
        tokens = model_lib.generate(self.model_, self.vocab_.encode_titles(titles, self.cfg.max_title),
                                    self.trie_ if constrained else None, self.cfg.beams, self.cfg.max_ids,
                                    self.vocab_.levels)
        return [self.vocab_.decode_ids(t) for t in tokens]

    def checkpoint(self) -> dict[str, Any]:
        return {"state_dict": self.model_.state_dict(), "t5_config": self.model_.config.to_json_string(),
                "tokenizer": self.vocab_.tokenizer.to_str(), "sizes": list(self.sizes), "losses": self.losses_}


def build(cfg: Config, seed: int, data: Data) -> PlaylistModel:
    return PlaylistModel(cfg, seed, _data(cfg, data).sizes)


def sample_songs(ids: list[tuple[int, ...]], clusters: dict[tuple[int, ...], list[str]], k: int,
                 rng: np.random.Generator) -> list[str]:
    """One song per generated ID (not one already picked), in generation order, at most k."""
    picked: list[str] = []
    for id_ in ids:
        left = [s for s in clusters.get(id_, []) if s not in picked]
        if left:
            picked.append(left[int(rng.integers(len(left)))])
        if len(picked) == k:
            break
    return picked


def evaluate(fitted: PlaylistModel, cfg: Config, p: Playlists, part: str, seed: int) -> dict[str, Any]:
    rows = np.flatnonzero(p.part == part)
    titles = [p.titles[i] for i in rows]
    truths = [set(p.songs[i]) for i in rows]
    generated = fitted.generate_ids(titles)
    valid = [[g for g in ids if g is not None and g in p.clusters] for ids in generated]
    total = sum(len(ids) for ids in generated)
    rng = np.random.default_rng(seed)
    sets = [{s for g in ids for s in p.clusters[g]} for ids in valid]
    lists = [sample_songs(ids, p.clusters, cfg.k, rng) for ids in valid]
    out: dict[str, Any] = {"n": int(len(rows)), **pm.summarise(sets, lists, truths, cfg.k)}
    out["invalid_rate"] = (total - sum(len(v) for v in valid)) / total if total else 0.0
    out["diversity"] = float(np.mean([len(set(v)) / len(v) for v in valid if v])) if any(valid) else 0.0
    out["ids_per_playlist"] = total / max(len(rows), 1)
    out["songs_per_list"] = float(np.mean([len(songs) for songs in lists])) if lists else 0.0  # of k wanted
    train_rows = np.flatnonzero(p.part == "train")
    popular = pm.popularity([p.songs[i] for i in train_rows], cfg.k)
    neighbours = pm.TitleNeighbours([p.titles[i] for i in train_rows], [p.songs[i] for i in train_rows])
    baselines = {"popularity": [popular] * len(rows), "title_nn": neighbours.recommend(titles, cfg.k)}
    for name, recs in baselines.items():
        scores = pm.summarise([set(r) for r in recs], recs, truths, cfg.k)
        out.update({f"{name}_{key}": value for key, value in scores.items()})
    out["example"] = {"title": titles[0], "ids": [list(g) for g in valid[0][:5]], "songs": lists[0][:5]} if len(rows) else {}
    return out


def train(cfg: Config, data: Data, seed: int) -> Trained:
    p = _data(cfg, data)
    train_rows = np.flatnonzero(p.part == "train")
    songs = np.array([len(p.clusters[tuple(row)]) for row in p.all_ids.tolist()])
    fitted = build(cfg, seed, data).fit([p.titles[i] for i in train_rows], [p.codes[i] for i in train_rows],
                                        p.all_ids, songs)
    out: dict[str, Any] = {"layer": data.layers[0], "final_loss": fitted.losses_[-1]}
    for part in ("val", "test"):
        if np.any(p.part == part):
            out[part] = evaluate(fitted, cfg, p, part, seed)
    notes = [f"set metrics expand each generated ID to all its songs; ranked metrics score one sampled song per ID, k={cfg.k}",
             "playlists split by a hash of their id; the tracks' split is not used"]
    checkpoint = {**fitted.checkpoint(), "config": json.dumps(asdict(cfg)), "semantic_ids": cfg.semantic_ids}
    return Trained(fitted, out, checkpoint, data.layers[0], notes)


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    return []
