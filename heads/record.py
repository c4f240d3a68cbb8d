"""A run on disk: `data/runs/<run_id>/` (config, metrics, checkpoint, report, plots) and its row
in the `runs` table, written as its own part so concurrent runs never rewrite each other.

The folder is written first and the row last: the row is the commit. A run killed half-way
leaves a folder no row points at, and nothing in the table.
"""
from __future__ import annotations

import json
import secrets
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from heads.protocol import Writer
from lake import atomic, catalog, paths, versions
from lake.schemas import RUNS

PACKAGES = ("audiolake", "torch", "numpy", "scipy", "scikit-learn", "duckdb", "pyarrow", "transformers")


def new_run_id(head: str, now: datetime | None = None) -> str:
    """Sorts by creation time; the random tail keeps two runs started in one second apart."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{head}-{secrets.token_hex(3)}"


def packages() -> dict[str, str]:
    return versions.package_versions(*PACKAGES, python=True)


def git_commit() -> str:
    """HEAD of the checkout this code runs from, or "unknown" outside one (a wheel install)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def run_part(dataset: str, run_id: str) -> Path:
    return paths.partition_dir("runs", dataset=dataset) / f"part-{run_id}.parquet"


def write_row(row: dict[str, Any]) -> Path:
    table = pa.Table.from_pylist([row], schema=RUNS)
    target = atomic.write_parquet(table, run_part(row["dataset"], row["run_id"]))
    catalog.refresh()
    return target


def write_folder(folder: Path, config: dict[str, Any], result: dict[str, Any], report: str,
                 checkpoints: dict[str, dict[str, Any]], artifacts: dict[str, Writer] | None = None) -> None:
    """Every file atomically; an artifact's writer fills a temporary path that is renamed into
    place only when it returns (heads/protocol.py)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(config, folder / "config.json")
    atomic.write_json(result, folder / "metrics.json")
    for name, checkpoint in checkpoints.items():
        with atomic.atomic_path(folder / name) as tmp:
            torch.save(checkpoint, tmp)
    for name, writer in (artifacts or {}).items():
        if name.endswith("/"):
            _write_dir(folder / name.rstrip("/"), writer)
            continue
        with atomic.atomic_path(folder / name) as tmp:
            writer(tmp)
    atomic.write_text(report, folder / "report.md")


def _write_dir(target: Path, writer: Writer) -> None:
    """A folder artifact: filled in a temporary directory beside it, then renamed into place."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        writer(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dumps(obj: Any, sort_keys: bool = True) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=sort_keys, default=str)
