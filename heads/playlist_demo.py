"""Demo playlists from the demo corpus's titles, ingested as `source=playlists` (seed 004 on the demo).

    python -m heads.playlist_demo dataset=demo [playlists=300] [songs=10] [seed=0]

Each playlist takes a seeded anchor track's `title` as its title and `songs` tracks that share
the anchor's genre and mood (the words the demo's titles are made of), so a title does say
something about its songs. The JSON is written under the lake root (`sources/`) and ingested
through the playlists source, like any user's playlists.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ingest.api import ingest
from lake import atomic, catalog, paths
from lake.cli import key_values, make_console, parse_config, run_main


@dataclass
class DemoPlaylistsConfig:
    dataset: str = "demo"
    playlists: int = 300
    songs: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        if self.playlists < 1 or self.songs < 1:
            raise ValueError("playlists and songs must be at least 1")


def make(cfg: DemoPlaylistsConfig) -> list[dict]:
    rows = catalog.connect().execute(
        "SELECT track_id, title, label, affect_label FROM tracks WHERE dataset = $d AND title IS NOT NULL "
        "ORDER BY track_id", {"d": cfg.dataset}).fetchall()
    if not rows:
        raise ValueError(f"dataset={cfg.dataset} has no titled tracks: just demo ingests them")
    rng = np.random.default_rng(cfg.seed)
    pools: dict[tuple, list[str]] = {}
    for track, _, label, affect in rows:
        pools.setdefault((label, affect), []).append(track)
    out = []
    for i in range(cfg.playlists):
        _, title, label, affect = rows[int(rng.integers(len(rows)))]
        pool = pools[(label, affect)]
        picked = rng.choice(pool, min(cfg.songs, len(pool)), replace=False)
        out.append({"playlist_id": f"demo_pl_{i:04d}", "title": title, "tracks": [str(t) for t in picked]})
    return out


def toy_run(dataset: str, per_playlist: int = 5) -> str:
    """For tests of every head: playlists over a hand-written lake's tracks (titled by their label,
    so a title says something) and a small head=semantic_ids run; returns its run id."""
    from heads.train import train

    rows = catalog.connect().execute("SELECT track_id, label FROM tracks WHERE dataset = $d ORDER BY track_id",
                                     {"d": dataset}).fetchall()
    by_label: dict[str, list[str]] = {}
    for track, label in rows:
        by_label.setdefault(str(label), []).append(track)
    entries = [{"playlist_id": f"{label}_{i}", "title": f"{label} mix {i % 3}", "tracks": tracks[i:i + per_playlist]}
               for label, tracks in by_label.items() for i in range(0, max(len(tracks) - per_playlist, 1), 2)]
    path = paths.root() / "sources" / f"{dataset}-playlists.json"
    atomic.write_text(json.dumps(entries), path)
    ingest(dataset, source="playlists", path=str(path))
    return train("semantic_ids", dataset=dataset, backbone="fake", codes="4,2").run_id


def main(argv: list[str]) -> int:
    cfg = parse_config(DemoPlaylistsConfig, key_values(argv))
    path = paths.root() / "sources" / f"{cfg.dataset}-playlists.json"
    atomic.write_text(json.dumps(make(cfg), indent=0), path)
    result = ingest(cfg.dataset, source="playlists", path=str(path))
    result.print_summary(make_console(stderr=True))
    return 0


if __name__ == "__main__":
    run_main(main)
