"""`just playlist run=RUN "quiet piano for study" [n=20] [seed=0] [dataset=NAME]` — a playlist from
a title, by a head=playlist run: the T5 generates semantic IDs (trie-constrained beam search),
one song is sampled from each ID's cluster (seeded: another seed, another playlist).

    just playlist run=latest dataset=demo "calm piano" n=10
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tokenizers import Tokenizer
from transformers import T5Config, T5ForConditionalGeneration

from heads import playlist_model as model_lib
from heads.playlist import clusters_of, load_codes, sample_songs
from lake import catalog, paths, storage
from lake.cli import UsageError, make_console, parse_config, run_main, split_args


@dataclass
class GenerateConfig:
    run: str = "latest"      # a head=playlist run id, or latest
    dataset: str = ""        # with run=latest: the newest playlist run on this dataset
    n: int = 20
    seed: int = 0
    beams: int = 0           # 0: the run's

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n}: must be at least 1")


def find_run(cfg: GenerateConfig) -> tuple[str, str, str]:
    con = catalog.connect()
    if cfg.run == "latest":
        found = con.execute("SELECT run_id, dataset, path FROM runs WHERE head = 'playlist' AND ($d = '' OR dataset = $d) "
                            "ORDER BY created_at DESC LIMIT 1", {"d": cfg.dataset}).fetchall()
    else:
        found = con.execute("SELECT run_id, dataset, path FROM runs WHERE run_id = $r AND head = 'playlist'",
                            {"r": cfg.run}).fetchall()
    if not found:
        raise UsageError(f"run={cfg.run}: no head=playlist run" + (f" on dataset {cfg.dataset}" if cfg.dataset else "")
                         + ": just train head=playlist dataset=NAME")
    return found[0]


def load(folder_path: str) -> tuple[T5ForConditionalGeneration, dict[str, Any]]:
    checkpoint = torch.load(storage.readable(paths.root() / folder_path / "model.pt"), weights_only=True)
    model = T5ForConditionalGeneration(T5Config(**json.loads(checkpoint["t5_config"])))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint


def song_names(dataset: str, tracks: list[str]) -> dict[str, str]:
    con = catalog.connect()
    con.register("wanted", pa.table({"track_id": pa.array(tracks, pa.string())}))
    rows = con.execute("""
        SELECT w.track_id, coalesce(any_value(p.song_title) || coalesce(' — ' || any_value(p.artist), ''),
                                    any_value(t.title), '')
        FROM wanted w LEFT JOIN playlists p ON p.track_id = w.track_id AND p.dataset = $d
                      LEFT JOIN tracks t ON t.track_id = w.track_id AND t.dataset = $d
        GROUP BY w.track_id""", {"d": dataset}).fetchall()
    return dict(rows)


def recommend(cfg: GenerateConfig, title: str) -> tuple[list[tuple[str, tuple[int, ...], str]], dict[str, Any]]:
    run_id, dataset, folder = find_run(cfg)
    torch.set_num_threads(1)  # one short beam search: more threads only contend
    model, checkpoint = load(folder)
    run_cfg = json.loads(checkpoint["config"])
    sizes = tuple(checkpoint["sizes"])
    vocab = model_lib.Vocabulary(Tokenizer.from_str(checkpoint["tokenizer"]), sizes)
    codes = load_codes(checkpoint["semantic_ids"])
    clusters = clusters_of(codes)
    existing = sorted(clusters)
    songs = np.array([len(clusters[i]) for i in existing]) if run_cfg.get("cap_repeats") else None
    trie = model_lib.IdTrie(np.array(existing), vocab, songs)
    tokens = model_lib.generate(model, vocab.encode_titles([title], run_cfg["max_title"]), trie,
                                cfg.beams or run_cfg["beams"], max(run_cfg["max_ids"], cfg.n), vocab.levels)[0]
    ids = [g for g in vocab.decode_ids(tokens) if g is not None]
    songs = sample_songs(ids, clusters, cfg.n, np.random.default_rng(cfg.seed))
    names = song_names(dataset, songs)
    return [(s, codes[s], names.get(s, "")) for s in songs], {"run": run_id, "dataset": dataset, "ids": len(ids)}


def main(argv: list[str]) -> int:
    pairs, words = split_args(argv)
    cfg = parse_config(GenerateConfig, pairs)
    title = " ".join(words).strip()
    if not title:
        raise UsageError('give a title: just playlist run=RUN "quiet piano for study"')
    rows, about = recommend(cfg, title)
    console = make_console()
    console.print(f"[bold]{title}[/] — run {about['run']} ({about['dataset']}), {about['ids']} IDs generated, "
                  f"{len(rows)} songs (seed {cfg.seed})", highlight=False)
    for i, (track, code, name) in enumerate(rows, 1):
        console.print(f"{i:3d}. {track}  {name}  [dim]{'-'.join(map(str, code))}[/]", highlight=False)
    return 0


if __name__ == "__main__":
    run_main(main)
