"""`just score run=RUN_ID FILE [FILE ...]` — a trained scorer's score for new recordings.

    just score run=20261130T120000Z-scorer-1a2b3c take1.wav take2.m4a
    just score run=latest head=scorer dataset=demo take1.wav       # the newest scorer run on demo

Each file (wav, flac, ogg, mp3, m4a, ...) is decoded and embedded with the run's backbone(s)
exactly as the lake embedded its dataset (embed/files.py: the stored provenance, the engine's
decoding and pooling), fused in the run's order, scored by the run's model.pt and mapped to
the data's score scale by its isotonic calibration. Prints file, score, score band (the
run's `bands=`) and the raw output the ranking metrics are computed on (isotonic calibration is
a step function: takes on one step share a score, and the raw output still orders them). A file that cannot be read or decoded is named on one line; the others still
get their scores, and the exit code is then 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape
from rich.table import Table

from embed.files import FilesError, embed_files, load_model
from heads import ranking_metrics, scorer
from lake import catalog, paths, storage
from lake.cli import UsageError, fail, make_console, parse_config, run_main, split_args


@dataclass
class ScoreConfig:
    run: str = "latest"              # a run_id, or latest (the newest run of head= on dataset=)
    head: str = "scorer"
    dataset: str = ""                # with run=latest: the newest run on this dataset
    device: str = "auto"


def find_run(cfg: ScoreConfig) -> dict[str, Any]:
    con = catalog.connect()
    if cfg.run != "latest":
        found = con.execute("SELECT run_id, head, dataset, backbones, path FROM runs WHERE run_id = $run",
                            {"run": cfg.run}).fetchall()
        if not found:
            raise UsageError(f"run={cfg.run!r} is not in the runs table (just runs lists them)")
    else:
        found = con.execute(
            "SELECT run_id, head, dataset, backbones, path FROM runs WHERE head = $head "
            "AND ($dataset = '' OR dataset = $dataset) ORDER BY created_at DESC, run_id DESC LIMIT 1",
            {"head": cfg.head, "dataset": cfg.dataset}).fetchall()
        if not found:
            raise UsageError(f"run=latest: no {cfg.head} run" + (f" on dataset {cfg.dataset}" if cfg.dataset else "")
                             + f" (train one: just train head={cfg.head} dataset=... backbone=...)")
    run_id, head, dataset, backbones, path = found[0]
    if head != "scorer":
        raise UsageError(f"run {run_id} is a {head} run: just score takes a scorer run")
    return {"run_id": run_id, "dataset": dataset, "backbones": list(backbones), "folder": paths.root() / path}


def score_files(run: dict[str, Any], files: list[Path], device: str = "auto"
                ) -> tuple[dict[Path, tuple[float, float]], dict[Path, str], list[float] | None]:
    """{file: (calibrated score, raw output)} for the files every backbone could embed, {file:
    reason} for the others, and the run's band edges (None when it learnt from ranks alone)."""
    model_file = run["folder"] / "model.pt"
    if not model_file.is_file():
        raise UsageError(f"run {run['run_id']}: {model_file} is missing")
    checkpoint = torch.load(storage.readable(model_file), weights_only=True, map_location="cpu")  # tensors and plain values only
    blocks, failed, kept = [], {}, None
    for backbone in run["backbones"]:
        try:
            got = embed_files(files, backbone, [checkpoint["layer_of"][backbone]], device,
                              loaded=load_model(backbone, device))
        except FilesError as err:
            raise UsageError(str(err)) from None
        failed.update(got.failed)
        blocks.append(dict(zip(got.paths, got.vectors[checkpoint["layer_of"][backbone]])))
        kept = [p for p in (kept if kept is not None else got.paths) if p in blocks[-1]]
    kept = kept or []
    if not kept:
        return {}, failed, checkpoint.get("bands") if checkpoint["calibration"] is not None else None
    X = np.stack([np.concatenate([block[p] for block in blocks]) for p in kept]).astype(np.float32)
    model = scorer.Scorer.from_checkpoint(checkpoint)
    raw = model.predict_raw(X)
    bands = checkpoint.get("bands") if checkpoint["calibration"] is not None else None
    return dict(zip(kept, zip(model.calibrate(raw).tolist(), raw.tolist()))), failed, bands


def main(argv: list[str]) -> int:
    pairs, words = split_args(argv)
    cfg = parse_config(ScoreConfig, pairs)
    if not words:
        raise UsageError("name one or more audio files: just score run=RUN_ID FILE [FILE ...]")
    files = [Path(w).expanduser() for w in words]
    run = find_run(cfg)
    scores, failed, bands = score_files(run, files, cfg.device)
    err = make_console(stderr=True)
    for path, reason in failed.items():
        err.print(f"[bold red]error:[/] {escape(str(path))}: {escape(reason)}", highlight=False, soft_wrap=True)
    if scores:
        names = ranking_metrics.band_names(tuple(bands)) if bands else None
        table = Table(title=f"scorer run {run['run_id']} · {' ⊕ '.join(run['backbones'])}", show_header=True,
                      header_style="bold")
        table.add_column("file")
        table.add_column("score", justify="right")
        table.add_column("band")
        table.add_column("raw", justify="right")
        for path, (value, raw) in scores.items():
            band = names[int(np.digitize(value, bands))] if names else "–"
            table.add_row(escape(str(path)), f"{value:.2f}", band, f"{raw:.4f}")
        make_console().print(table)
    if not scores and not failed:
        fail("nothing scored")
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
