"""Ingest throughput on generated folders of WAV files, against `tar cf` of the same files.

`tar cf` is the physical floor for writing a shard: it reads every byte and writes it once.
Our ingest also decodes every clip (the decode-check), hashes it, writes the manifest and
refreshes the catalog. Target: within 3x of tar for WAV input with the decode-check on.

Two shapes run by default, in one run: GTZAN-like (30 s clips) and short clips (5 s), plus
the fixed cost of one ingest (interpreter, imports, worker start, catalog) measured on a
one-clip folder, so the ratio can be read for what it is: per-byte cost plus a constant.

    python bench/ingest.py [shapes=1000x30,4000x5] [rate=22050] [workers=0]
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

from lake.cli import UsageError, parse_config, run_main, split_args  # noqa: E402


@dataclass
class BenchConfig:
    shapes: tuple[str, ...] = ("1000x30", "4000x5")  # clips x seconds
    rate: int = 22050
    workers: int = 0


def make_folder(folder: Path, clips: int, seconds: float, rate: int) -> int:
    rng = np.random.default_rng(0)
    frames = int(seconds * rate)
    base = (0.2 * np.sin(2 * np.pi * 220 * np.arange(frames) / rate)).astype(np.float32)
    total = 0
    for i in range(clips):
        path = folder / f"genre{i % 10}" / f"genre{i % 10}.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, base + rng.normal(0, 0.01, frames).astype(np.float32), rate, subtype="PCM_16")
        total += path.stat().st_size
    return total


def timed(command: list[str], **options) -> float:
    os.sync()  # start each timing with no dirty pages from the previous step
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **options)
    os.sync()  # and count the writes as done only when they are on disk
    return time.perf_counter() - started


def ingest_seconds(folder: Path, lake: Path, workers: int) -> float:
    env = {**os.environ, "AUDIOLAKE_ROOT": str(lake)}
    return timed([sys.executable, "-m", "ingest", "dataset=bench", "source=folder", f"path={folder}",
                  f"workers={workers}"], env=env, cwd=Path(__file__).resolve().parents[1])


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    work = Path(tempfile.mkdtemp(prefix="audiolake-bench-"))
    try:
        one = work / "one"
        make_folder(one, 1, 1.0, cfg.rate)
        fixed = min(ingest_seconds(one, work / f"lake-one{i}", cfg.workers) for i in range(2))
        print(f"fixed cost of one ingest (1 clip: start-up, imports, workers, catalog): {fixed:.2f} s\n")
        print(f"{'shape':18}{'MB':>7}{'tar s':>8}{'ingest s':>10}{'clips/s':>9}{'MB/s':>8}{'ratio':>8}"
              f"{'ratio less fixed':>18}")
        for shape in cfg.shapes:
            try:
                clips, seconds = (float(x) for x in shape.split("x"))
            except ValueError:
                raise UsageError(f"shapes={shape!r}: expected CLIPSxSECONDS, e.g. 1000x30") from None
            folder = work / shape
            mb = make_folder(folder, int(clips), seconds, cfg.rate) / 2**20
            tar_s = timed(["tar", "cf", str(work / f"{shape}.tar"), "-C", str(folder), "."])
            ours = ingest_seconds(folder, work / f"lake-{shape}", cfg.workers)
            print(f"{f'{int(clips)} x {seconds:g} s':18}{mb:7.0f}{tar_s:8.2f}{ours:10.2f}{clips / ours:9.0f}"
                  f"{mb / ours:8.1f}{ours / tar_s:7.2f}x{(ours - fixed) / tar_s:17.2f}x")
            shutil.rmtree(folder)
        print("\ntarget: ingest within 3x of tar (WAV, decode-check on)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
