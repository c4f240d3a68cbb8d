"""Training any head: load the selection once, fit each seed, record one run.

    from heads.train import train
    run = train("probe", dataset="demo", backbone="logmel", target="label", seeds=3)
    run.metrics["test"]["accuracy"], run.folder

`seeds=N` fits seeds seed … seed+N-1 on the same loaded arrays and records ONE run: its
metrics are the mean over seeds (so `just runs` and `just compare` read a multi-seed run like
any other), `metrics.seeds` holds the seed values, the std of every number and each seed's
own metrics; counts the head declares (`COUNTS`: a confusion matrix) are summed over seeds,
other lists (curves, per-item arrays) are the first seed's. `model.pt` is the first seed's
checkpoint, `model-seed<S>.pt` the others'; artifacts likewise (heads/protocol.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from heads import metrics, record, registry, report
from heads.data import Data, load
from heads.protocol import Metric, check_artifact_name, seed_file_name
from lake import paths
from lake.cli import parse_config, make_console


@dataclass
class Run:
    run_id: str
    folder: Path
    row: dict[str, Any]
    metrics: dict[str, Any]
    data: Data


def train(head: str, console: Console | None = None, **keys: Any) -> Run:
    """`keys` are a head Config's fields (strings, as from the command line, or values)."""
    module = registry.get(head)
    cfg = parse_config(module.Config, {k: _text(v) for k, v in keys.items()})
    return train_config(head, cfg, console)


def train_config(head: str, cfg: Any, console: Console | None = None) -> Run:
    console = console or make_console(stderr=True, quiet=True)
    module = registry.get(head)
    inputs = module.inputs(cfg)
    # a head that trains on raw audio (lora) selects the same rows without stored vectors
    data = module.load_data(cfg, inputs) if hasattr(module, "load_data") else load(cfg, inputs)
    described = module.describe(cfg, data)
    nulls = ", ".join(dict.fromkeys(inputs.columns[k] for k in inputs.required))
    console.print(f"{cfg.dataset}: {len(data.track_ids):,} rows ("
                  + ", ".join(f"{p} {n}" for p, n in data.counts().items()) + ")"
                  + (f", {described.line}" if described.line else "")
                  + (f"; {data.dropped_null} dropped with NULL {nulls}" if data.dropped_null else ""))

    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    trained = []
    for seed in seeds:
        trained.append(module.train(cfg, data, seed))
        if len(seeds) > 1:
            console.print(f"  seed {seed}: " + _brief(trained[-1].metrics, module.HEADLINE))

    if len(trained) == 1:
        result = dict(trained[0].metrics)
        result["seeds"] = {"values": seeds}
    else:
        result, std = metrics.aggregate([t.metrics for t in trained], counts=module.COUNTS)
        result["seeds"] = {"values": seeds, "std": std or {}, "per_seed": [t.metrics for t in trained]}
    layer = result.get("layer") or trained[0].layer
    result["data"] = {"rows": data.counts(), "dropped_null": data.dropped_null, "dims": data.dims,
                      "fingerprint": data.fingerprint, **described.facts}
    result["headline"] = [m.spec() for m in module.HEADLINE]
    result["variant"] = cfg.variant

    created = datetime.now(timezone.utc)
    run_id = record.new_run_id(head, created)
    folder = paths.runs_dir() / run_id
    config = {"head": head, **dataclasses.asdict(cfg), "resolved_layers": data.layer_of}
    row = {
        "run_id": run_id, "head": head, "dataset": cfg.dataset, "backbones": list(cfg.backbone),
        "layer": layer, "split_name": cfg.split, "target": cfg.target,
        # metrics keep the head's order (score bands low → high); config and packages are sorted
        "config": record.dumps(config), "metrics": record.dumps(result, sort_keys=False),
        "packages": record.dumps(record.packages()), "git_commit": record.git_commit(),
        "data_fingerprint": data.fingerprint, "created_at": created,
        "path": str(folder.relative_to(paths.root())),
    }
    if not writes_run():  # torchrun: every rank trained, rank 0 alone records the run
        return Run(run_id, folder, row, result, data)
    plots = [p.name for p in module.plots(result, data, folder)]
    checkpoints = {("model.pt" if i == 0 else f"model-seed{s}.pt"): t.checkpoint
                   for i, (s, t) in enumerate(zip(seeds, trained))}
    artifacts: dict[str, Any] = {}
    for i, (s, t) in enumerate(zip(seeds, trained)):
        for name, writer in t.artifacts.items():
            artifacts[check_artifact_name(name if i == 0 else seed_file_name(name, s),
                                          {*plots, *checkpoints, *artifacts})] = writer
    notes = list(dict.fromkeys(n for t in trained for n in t.notes))
    text = report.markdown(row, data, result, plots, notes, described.report)
    record.write_folder(folder, config, result, text, checkpoints, artifacts)
    record.write_row(row)
    return Run(run_id, folder, row, result, data)


def writes_run() -> bool:
    """False on the ranks other than 0 of a distributed (torchrun) job."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _brief(result: dict[str, Any], headline: tuple[Metric, ...]) -> str:
    part = "test" if "test" in result else "val"
    found = [f"{m.name} {result[part][m.name]:{m.format}}" for m in headline
             if isinstance(result[part].get(m.name), float)][:2]
    return f"{part} " + ", ".join(found) + (f" (layer {result['layer']})" if "layers" in result else "")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)
