"""Crash and race check: SIGKILLed and concurrent jobs must leave the tables an undisturbed run leaves.

The lake's promise (README, "Promises"): a killed job re-run finishes with exactly the tables
an undisturbed run writes, and two jobs on one lake either both finish with those tables or one
is refused in a line. This script checks it with real processes, not mocks:

1. reference: a generated folder of clips is ingested and embedded once, undisturbed;
2. kills: `kills` times, an ingest or an embed (alternating; on a fresh lake each round) is
   SIGKILLed at a random moment of its run and then re-run to completion; the lake's logical
   tables (tracks, embeddings, backbones) must equal the reference's;
3. twins: two identical embeds started together, then two embeds under one name with different
   settings (max_seconds): each pair either both succeed or one exits non-zero with a
   one-line refusal; the tables afterwards equal an undisturbed run of the settings that won, and
   the `backbones` row records the settings the vectors were made with.

"Logical" tables: rows sorted, with the columns that name where bytes live (shard paths carry a
build id that differs per run) and creation times left out; vectors compared bitwise.

    python bench/crash_race.py [kills=10] [clips=60] [seconds=2.0] [backbone=logmel] [seed=0]

Exit status 0 when every round holds, 1 when one does not (each failure is printed).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import key_values, parse_config, run_main  # noqa: E402

WHERE_BYTES_LIVE = ("shard", "key", "offset", "source", "created_at")


@dataclass
class CrashConfig:
    kills: int = 10
    clips: int = 60
    seconds: float = 2.0          # length of each generated clip
    backbone: str = "logmel"
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("kills", "clips"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)}: must be 0 or more")
        if not self.seconds > 0:
            raise ValueError(f"seconds={self.seconds}: must be positive")


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        (self.lines if ok else self.failures).append(("ok    " if ok else "FAIL  ") + what)


def make_source(folder: Path, cfg: CrashConfig) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(cfg.seed)
    rate = 16000
    t = np.arange(int(cfg.seconds * rate)) / rate
    for i in range(cfg.clips):
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(110, 880) * t) + rng.normal(0, 0.02, len(t))
        sub = folder / ("a" if i % 2 else "b")  # sub-folder names become labels
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"clip{i:04d}.wav", wave.astype(np.float32), rate, subtype="PCM_16")
    return folder


def command(kind: str, root: Path, cfg: CrashConfig, source: Path, *extra: str) -> list[str]:
    if kind == "ingest":
        return [sys.executable, "-m", "ingest", "dataset=crash", "source=folder", f"path={source}",
                "shard_max_count=8", *extra]
    return [sys.executable, "-m", "embed", "dataset=crash", f"backbone={cfg.backbone}", "loader_workers=0",
            *extra]


def run(kind: str, root: Path, cfg: CrashConfig, source: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUDIOLAKE_ROOT": str(root)}
    return subprocess.run(command(kind, root, cfg, source, *extra), env=env, capture_output=True, text=True)


def start(kind: str, root: Path, cfg: CrashConfig, source: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "AUDIOLAKE_ROOT": str(root)}
    return subprocess.Popen(command(kind, root, cfg, source, *extra), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def logical(root: Path, table: str) -> dict[str, list]:
    """A table's rows as sorted columns, without the columns that say where bytes live."""
    directory = root / "tables" / table
    files = sorted(directory.rglob("*.parquet")) if directory.is_dir() else []
    if not files:
        return {}
    data = pa.concat_tables([pq.read_table(f, partitioning=None) for f in files], promote_options="default")
    keep = [c for c in data.column_names if c not in WHERE_BYTES_LIVE]
    data = data.select(keep)
    order = [c for c in ("dataset", "backbone", "track_id", "layer") if c in keep]
    if order:
        data = data.sort_by([(c, "ascending") for c in order])
    return {c: data.column(c).to_pylist() for c in keep}


def snapshot(root: Path) -> dict[str, dict[str, list]]:
    return {table: logical(root, table) for table in ("tracks", "embeddings", "backbones")}


def differences(got: dict, want: dict) -> list[str]:
    found = []
    for table in want:
        if got[table].keys() != want[table].keys():
            found.append(f"{table}: columns {sorted(got[table])} vs {sorted(want[table])}")
            continue
        for column in want[table]:
            if got[table][column] != want[table][column]:
                rows = len(got[table][column]), len(want[table][column])
                found.append(f"{table}.{column} differs ({rows[0]} vs {rows[1]} rows)")
    return found


def settings_of_backbone(root: Path) -> str:
    rows = logical(root, "backbones")
    return rows.get("settings", [""])[0] if rows else ""


def one_line_refusal(done: subprocess.CompletedProcess | subprocess.Popen, stderr: str) -> bool:
    text = stderr.strip()
    return "Traceback" not in text and "error:" in text


def kill_round(index: int, kind: str, cfg: CrashConfig, source: Path, reference: dict, budget: dict[str, float],
               workdir: Path, rng: random.Random) -> tuple[bool, str]:
    root = workdir / f"kill{index}"
    if kind == "embed":
        done = run("ingest", root, cfg, source)
        assert done.returncode == 0, done.stderr
    delay = rng.uniform(0.1, budget[kind])
    job = start(kind, root, cfg, source)
    try:
        job.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)  # the job and its workers, as a power cut would
        job.wait()
        killed = True
    for step in (["ingest", "embed"] if kind == "ingest" else ["embed"]):
        done = run(step, root, cfg, source)
        if done.returncode != 0:
            return False, f"{kind} killed at {delay:.2f} s: the re-run of {step} failed: {done.stderr.strip()[-300:]}"
    diff = differences(snapshot(root), reference)
    shutil.rmtree(root, ignore_errors=True)
    what = f"{kind} {'killed' if killed else 'finished before the kill'} at {delay:.2f} s, re-run"
    return not diff, what + ("" if not diff else ": " + "; ".join(diff))


def twin_round(cfg: CrashConfig, source: Path, workdir: Path, settings: tuple[list[str], list[str]],
               references: dict[str, dict], label: str) -> tuple[bool, str]:
    root = workdir / ("twins-" + "".join(c if c.isalnum() else "-" for c in label))
    done = run("ingest", root, cfg, source)
    assert done.returncode == 0, done.stderr
    jobs = [start("embed", root, cfg, source, *extra) for extra in settings]
    results = [(job.wait(), job.communicate()[1]) for job in jobs]
    codes = [code for code, _ in results]
    refused = [err for code, err in results if code != 0]
    if len(refused) == 2:
        return False, f"{label}: both jobs failed: {refused[0].strip()[-200:]} | {refused[1].strip()[-200:]}"
    if refused and not one_line_refusal(None, refused[0]):
        return False, f"{label}: the refused job did not say why in one line: {refused[0].strip()[-300:]}"
    # Whatever finished must be complete; a re-run of the winner has nothing to do.
    winner = settings[codes.index(0)]
    again = run("embed", root, cfg, source, *winner)
    if again.returncode != 0 or "already embedded" not in again.stderr:
        return False, f"{label}: a re-run of the winning settings did not find the job complete: {again.stderr[-300:]}"
    want = references[" ".join(winner)]
    diff = differences(snapshot(root), want)
    shutil.rmtree(root, ignore_errors=True)
    outcome = "one refused" if refused else "both finished"
    return not diff, f"{label}: {outcome}; tables {'equal' if not diff else 'differ: ' + '; '.join(diff)}"


def timed_reference(cfg: CrashConfig, source: Path, workdir: Path, *extra: str) -> tuple[dict, dict[str, float]]:
    root = workdir / ("reference" + "-".join(extra))
    times = {}
    for kind in ("ingest", "embed"):
        started = time.perf_counter()
        done = run(kind, root, cfg, source, *(extra if kind == "embed" else ()))
        times[kind] = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the undisturbed {kind} failed: {done.stderr.strip()}")
    reference = snapshot(root)
    shutil.rmtree(root, ignore_errors=True)
    return reference, times


def check(cfg: CrashConfig, workdir: Path) -> Outcome:
    outcome = Outcome()
    source = make_source(workdir / "source", cfg)
    reference, budget = timed_reference(cfg, source, workdir)
    outcome.lines.append(f"reference: ingest {budget['ingest']:.1f} s, embed {budget['embed']:.1f} s "
                         f"({cfg.clips} clips of {cfg.seconds:g} s, {cfg.backbone})")
    rng = random.Random(cfg.seed)
    for index in range(cfg.kills):
        kind = ("ingest", "embed")[index % 2]
        ok, what = kill_round(index, kind, cfg, source, reference, budget, workdir, rng)
        outcome.check(ok, what)
    short = ["max_seconds=1"]
    references = {"": reference, " ".join(short): timed_reference(cfg, source, workdir, *short)[0]}
    outcome.check(*twin_round(cfg, source, workdir, ([], []), references, "two identical embeds at once"))
    outcome.check(*twin_round(cfg, source, workdir, ([], short), references,
                              "two embeds under one name, max_seconds 30 and 1, at once"))
    return outcome


def main(argv: list[str]) -> int:
    cfg = parse_config(CrashConfig, key_values(argv))
    with tempfile.TemporaryDirectory(prefix="audiolake-crash-") as tmp:
        outcome = check(cfg, Path(tmp))
    for line in outcome.lines + outcome.failures:
        print(line)
    total = cfg.kills + 2
    print(f"{total - len(outcome.failures)} of {total} rounds hold")
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    run_main(main)
