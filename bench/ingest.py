"""Ingest throughput on a generated folder of WAV files, against `tar cf` of the same files.

`tar cf` is the physical floor for writing a shard: it reads every byte and writes it once.
Our ingest additionally decodes every clip (the decode-check), hashes it and writes the
manifest. Target: within 3x of tar for WAV input with the decode-check on.

    python bench/ingest.py [clips=2000] [seconds=5] [rate=22050] [workers=0]
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import parse_config, run_main, split_args  # noqa: E402


@dataclass
class BenchConfig:
    clips: int = 2000
    seconds: float = 5.0
    rate: int = 22050
    workers: int = 0


def make_folder(folder: Path, cfg: BenchConfig) -> int:
    rng = np.random.default_rng(0)
    total = 0
    frames = int(cfg.seconds * cfg.rate)
    base = (0.2 * np.sin(2 * np.pi * 220 * np.arange(frames) / cfg.rate)).astype(np.float32)
    for i in range(cfg.clips):
        path = folder / f"genre{i % 10}" / f"genre{i % 10}.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, base + rng.normal(0, 0.01, frames).astype(np.float32), cfg.rate, subtype="PCM_16")
        total += path.stat().st_size
    return total


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    work = Path(tempfile.mkdtemp(prefix="audiolake-bench-"))
    try:
        folder = work / "in"
        nbytes = make_folder(folder, cfg)
        mb = nbytes / 2**20
        print(f"{cfg.clips} WAV clips, {cfg.seconds:g} s at {cfg.rate} Hz, {mb:.0f} MB in {folder}")

        started = time.perf_counter()
        subprocess.run(["tar", "cf", str(work / "floor.tar"), "-C", str(folder), "."], check=True)
        os.sync()
        tar_s = time.perf_counter() - started

        env = {**os.environ, "AUDIOLAKE_ROOT": str(work / "lake")}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ingest", "dataset=bench", "source=folder", f"path={folder}",
                        f"workers={cfg.workers}"], check=True, env=env, capture_output=True,
                       cwd=Path(__file__).resolve().parents[1])
        os.sync()
        ingest_s = time.perf_counter() - started

        print(f"{'':22}{'seconds':>9}{'clips/s':>10}{'MB/s':>9}")
        for name, secs in [("tar cf (floor)", tar_s), ("audiolake ingest", ingest_s)]:
            print(f"{name:22}{secs:9.2f}{cfg.clips / secs:10.0f}{mb / secs:9.1f}")
        ratio = ingest_s / tar_s
        print(f"ingest / tar = {ratio:.2f}x  (target <= 3x; includes interpreter start-up and a full decode of every clip)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
