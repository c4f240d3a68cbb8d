"""The semantic_ids head (seed 004, stage 1): songs quantised into semantic IDs by residual k-means.

    just train head=semantic_ids dataset=NAME backbone=item2vec codes=256,256,256
    just train head=semantic_ids dataset=demo backbone=logmel codes=8,8 over_cluster=4 dedup=true

The codebooks are fitted on the split's train rows (heads/rq_kmeans.py: FAISS k-means per level
on the residuals, seeded; `over_cluster=F` clusters into F·k and merges to k, the seed's
option); every selected song, val and test included, is then encoded with them. An ID shared
by several songs is a "concept cluster" (a feature in seed 004, not a bug); `dedup=true` adds
TIGER's last digit that makes every ID unique.

Metrics per part (val, test): per level the relative reconstruction error ‖x − x̂‖²/‖x‖²,
codebook usage and perplexity; collisions of the full ID (IDs shared, songs in shared IDs,
largest cluster), as the seed's debug_collisions prints them. `queries/collisions.sql` answers
the same from the table. `method=rqvae` quantises an MLP autoencoder's latent instead
(heads/rq_vae.py: k-means initialised codebooks, commitment loss, dead-code reset; its
reconstruction errors are of the latent). Artifact: `semantic_ids.parquet` in the run folder, and the same rows
(`dataset, backbone, run_id, track_id, codes`) as the run's part of the `semantic_ids` table.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from heads.data import Data, Selection
from heads.protocol import Description, Inputs, Metric, Trained
from heads.rq_kmeans import LevelStats, RQKMeans, collisions, dedup_digit
from heads.rq_vae import RQVAE
from lake import atomic, catalog, paths
from lake.schemas import SEMANTIC_IDS

HEADLINE = (
    Metric("recon_error", "recon error", "min", about="‖x − x̂‖²/‖x‖² after the last level"),
    Metric("perplexity_min", "perplexity (min level)", "max", ".1f", short="perplexity"),
    Metric("shared_fraction", "songs in shared IDs", "none", ".3f", short="shared"),
    Metric("largest", "largest cluster", "none", ".0f", short="largest"),
)
COUNTS: tuple[str, ...] = ()
ARTIFACT = "semantic_ids.parquet"


@dataclass
class Config(Selection):
    target: str = "codes"            # what the run makes (no tracks column is read)
    codes: str = "256,256,256"       # codebook size per level
    levels: int = 0                  # with a single codes=K: K at each of this many levels
    over_cluster: float = 1.0        # >1: cluster into over_cluster·k first, then merge (seed 004)
    niter: int = 20                  # k-means iterations per level
    train_points: int = 262144       # at most this many train rows sampled to fit the levels (0: every one)
    points_per_code: int = 256       # k-means: and at most this many per code of the largest level (FAISS's rule)
    dedup: bool = False              # add a last digit that makes every ID unique (TIGER)
    threads: int = 1                 # FAISS threads (OpenMP spins: on a shared machine 1 is fastest)
    method: Literal["kmeans", "rqvae"] = "kmeans"  # rqvae: heads/rq_vae.py (errors measured in its latent)
    latent: int = 64                 # rqvae: latent width
    hidden: int = 256                # rqvae: encoder/decoder hidden width
    epochs: int = 20                 # rqvae: passes over the training sample

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            sizes = [int(k) for k in str(self.codes).split(",") if k.strip()]
        except ValueError:
            raise ValueError(f"codes={self.codes}: comma-separated codebook sizes, e.g. 256,256,256") from None
        if self.levels:
            if len(sizes) != 1 and len(sizes) != self.levels:
                raise ValueError(f"levels={self.levels} with codes={self.codes}: give one size or one per level")
            sizes = sizes * self.levels if len(sizes) == 1 else sizes
        if not sizes or any(k < 2 for k in sizes):
            raise ValueError(f"codes={self.codes}: each level needs at least 2 codes")
        self.codes = ",".join(map(str, sizes))
        if self.over_cluster < 1.0:
            raise ValueError(f"over_cluster={self.over_cluster}: 1 (off) or more")
        too_small = min(self.niter, self.threads, self.latent, self.hidden, self.epochs) < 1
        if too_small or min(self.train_points, self.points_per_code) < 0:
            raise ValueError("niter, threads, latent, hidden and epochs must be at least 1, train_points and "
                             "points_per_code at least 0")

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.codes.split(","))

    @property
    def variant(self) -> str:
        return ("rqvae " if self.method == "rqvae" else "") + f"codes={self.codes}" + (f" over={self.over_cluster:g}" if self.over_cluster > 1 else "") \
            + (" dedup" if self.dedup else "")


def inputs(cfg: Config) -> Inputs:
    return Inputs()


def describe(cfg: Config, data: Data) -> Description:
    train_rows = int(data.part("train").sum())
    # k-means cannot place more centroids than points: a level keeps at most one code per train row
    fitted = [min(k, train_rows) for k in cfg.sizes]
    line = f"{len(cfg.sizes)} levels of {cfg.codes} codes"
    if fitted != list(cfg.sizes):
        line += f" (at most {train_rows} per level: only {train_rows} train rows)"
    return Description(line=line, facts={"levels": len(cfg.sizes), "codes": list(cfg.sizes), "fitted_codes": fitted})


def build(cfg: Config, seed: int, data: Data) -> RQKMeans | RQVAE:
    if cfg.method == "rqvae":
        return RQVAE(codes=cfg.sizes, seed=seed, hidden=cfg.hidden, latent=cfg.latent, epochs=cfg.epochs,
                     train_points=cfg.train_points)
    return RQKMeans(codes=cfg.sizes, seed=seed, niter=cfg.niter, over_cluster=cfg.over_cluster,
                    train_points=cfg.train_points, points_per_code=cfg.points_per_code, threads=cfg.threads)


def part_metrics(codes: np.ndarray, stats: LevelStats) -> dict[str, Any]:
    levels = stats.result()
    out: dict[str, Any] = {"n": int(len(codes)), "recon_error": levels["recon_error"][-1],
                           "perplexity_min": min(levels["perplexity"]), **{f"{k}_per_level": v for k, v in levels.items()}}
    clash = collisions(codes)
    out["collisions"] = clash
    out["collisions_per_level"] = [collisions(codes[:, :level + 1]) for level in range(codes.shape[1])]
    out["shared_fraction"] = clash["songs_in_shared"] / max(clash["songs"], 1)
    out["largest"] = float(clash["largest"])
    return out


def table_part(dataset: str, run_id: str) -> Path:
    return paths.partition_dir("semantic_ids", dataset=dataset, run_id=run_id) / "part-000000.parquet"


def _writer(cfg: Config, data: Data, codes: np.ndarray, seed: int):  # noqa: ANN202
    def write(path: Path) -> None:
        run_id = path.parent.name  # heads.record hands a temporary path inside the run folder
        table = pa.table({
            "dataset": pa.array([cfg.dataset] * len(codes), pa.string()),
            "backbone": pa.array([",".join(cfg.backbone)] * len(codes), pa.string()),
            "run_id": pa.array([run_id] * len(codes), pa.string()),
            "track_id": pa.array(data.track_ids, pa.string()),
            # from the flat matrix: a list of a million small arrays costs seconds to convert
            "codes": pa.ListArray.from_arrays(pa.array(np.arange(0, codes.size + 1, codes.shape[1], dtype=np.int32)),
                                              pa.array(np.ascontiguousarray(codes, np.int32).reshape(-1))),
        }, schema=SEMANTIC_IDS)
        pq.write_table(table, path, compression="zstd")
        if seed == cfg.seed:  # the run's first seed is the run's codes in the lake table
            atomic.write_parquet(table, table_part(cfg.dataset, run_id))
            catalog.refresh()
    return write


def train(cfg: Config, data: Data, seed: int) -> Trained:
    layer = data.layers[0]
    X = data.features(layer)
    train_rows = data.part("train")
    rq = build(cfg, seed, data).fit(X, np.flatnonzero(train_rows))
    codes = np.empty((len(X), len(cfg.sizes)), np.int32)
    out: dict[str, Any] = {"layer": layer}
    for part in data.parts():
        rows = data.part(part)
        stats = LevelStats(rq.codes)
        codes[rows] = rq.encode(X, stats, np.flatnonzero(rows))
        if part != "train":
            out[part] = part_metrics(codes[rows], stats)
    out["all"] = {"collisions": collisions(codes)}
    if cfg.dedup:
        codes = np.concatenate([codes, dedup_digit(codes)[:, None]], axis=1)
        out["all"]["dedup_max"] = int(codes[:, -1].max())
    notes = ["codebooks fitted on train rows; val/test songs encoded with them",
             "an ID shared by several songs is a concept cluster (seed 004), not an error"]
    checkpoint = {**rq.checkpoint(), "config": asdict(cfg), "layer": layer}
    return Trained(rq, out, checkpoint, layer, notes, artifacts={ARTIFACT: _writer(cfg, data, codes, seed)})


def plots(result: dict[str, Any], data: Data, folder: Path) -> list[Path]:
    return []
