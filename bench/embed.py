"""Embedding throughput: the engine against the seeds' naive loop, on the same clips, in one run.

Models: a MERT-shaped randomly initialised HuBERT (12 layers, 768 hidden, 24 kHz input: the
compute of MERT-v1-95M, ~208 GFLOPs per 10 s clip) loaded through `hf:<dir>` exactly like a
hub model, and `musicnn-mtt`. The naive loop is what the seeds do per clip: load one file
(soundfile + soxr, which is what librosa.load does underneath), resample, run the model on
that one clip, `np.save` one file.

Printed: share of wall time inside the model's forward (target >= 95% on CPU), engine vs
naive clips/s (fp32 target >= 1.0x on CPU; precision=bf16 target >= 1.8x with its cosine to
fp32 reported), and, where CUDA is present, engine vs naive on the GPU (target >= 10x) and
engine vs forward-only at the best batch size (target >= 70%). The CPU runs are interleaved,
naive, engine fp32, engine bf16, naive, ... for `rounds` rounds, and their medians compared, so
a neighbour's load on a shared machine does not decide a ratio; each round's ratio is printed too.

Any registered backbone can be timed the same way, against the same naive loop around that
backbone's own `embed` (one file at a time: read, resample, embed, `np.save`): a name (`campplus`,
`qwen2-audio`: the real checkpoint, which must be downloaded or cached), `<kind>:<dir>`, or
`tiny:<kind>` for the tests' tiny random model of that kind (tiny:muq, tiny:muq-mulan,
tiny:campplus, tiny:ecapa, tiny:qwen2-audio, tiny:clap-fused).

    python bench/embed.py [clips=8] [seconds=10] [models=mert,musicnn,tiny:campplus,ecapa] [batch_size=4] [rounds=3]
"""
from __future__ import annotations

import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import soxr
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import parse_config, run_main, split_args  # noqa: E402


@dataclass
class BenchConfig:
    clips: int = 8            # for the MERT-shaped model (~2 s per clip on 2 cores)
    musicnn_clips: int = 64   # musicnn is ~100x cheaper: more clips for a stable figure
    seconds: float = 10.0
    models: tuple[str, ...] = ("mert", "musicnn")
    batch_size: int = 0       # the engine's default (1 on CPU)
    loader_workers: int = 1
    rounds: int = 3           # each run once per round, A B A B ...; medians are compared
    forward_reps: int = 5     # the forward alone, engine vs naive on one clip, interleaved: the ceiling of the ratios


def make_clips(folder: Path, cfg: BenchConfig) -> list[Path]:
    rng = np.random.default_rng(0)
    rate, frames = 44100, int(cfg.seconds * 44100)
    t = np.arange(frames) / rate
    files = []
    for i in range(max(cfg.clips, cfg.musicnn_clips)):  # stereo 44.1 kHz, as real music arrives: decode + downmix + resample all cost
        wave = 0.2 * np.sin(2 * np.pi * (110 + 30 * i) * t)[:, None] + rng.normal(0, 0.02, (frames, 2))
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
        files.append(path)
    return files


def _subset(work: Path, files: list[Path], name: str) -> Path:
    csv = work / f"{name}.csv"
    csv.write_text("track_id,audio_path\n" + "".join(f"{f.stem},{f}\n" for f in files))
    return csv


def mert_shaped(directory: Path) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                          feat_extract_norm="layer", do_stable_layer_norm=True)
    HubertModel(config).eval().save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True, return_attention_mask=True,
                             feature_size=1, padding_value=0.0).save_pretrained(directory)
    return directory


def naive_mert(files: list[Path], model_dir: Path, out: Path, device: str) -> float:
    from transformers import AutoFeatureExtractor, AutoModel

    started = time.perf_counter()  # loading counts, as it does in the engine's wall time
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).to(device).eval()
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        audio = soxr.resample(audio.mean(axis=1), rate, 24000)
        inputs = extractor(audio, sampling_rate=24000, return_tensors="pt").to(device)
        with torch.no_grad():
            vector = model(**inputs).last_hidden_state.mean(dim=1)[0].cpu().numpy()
        np.save(out / f"{path.stem}.npy", vector)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def naive_musicnn(files: list[Path], out: Path) -> float:
    from embed.musicnn import load_musicnn

    started = time.perf_counter()
    tagger = load_musicnn("musicnn-mtt")
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        vector = tagger.embed_waveform(soxr.resample(audio.mean(axis=1), rate, 16000))["penultimate"]
        np.save(out / f"{path.stem}.npy", vector)
    return time.perf_counter() - started


TINY = {"muq": "muq", "campplus": "campplus", "ecapa": "ecapa", "qwen2-audio": "qwen2_audio",
        "clap-fused": "clap_fused"}


def tiny_backbone(kind: str, work: Path) -> str:
    """`<kind>:<dir>` of the tests' tiny random model of that kind, built into `work`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import tiny_models

    if kind == "muq-mulan":
        mulan = tiny_models.muq_mulan(work / "tiny-muq-mulan", tiny_models.muq(work / "tiny-muq"),
                                      tiny_models.xlm_roberta(work / "tiny-xlm-roberta"))
        return f"muq-mulan:{mulan}"
    if kind not in TINY:
        raise ValueError(f"models=tiny:{kind}: no tiny model of that kind (tiny: {', '.join([*TINY, 'muq-mulan'])})")
    folder = getattr(tiny_models, TINY[kind])(work / f"tiny-{kind}")
    return f"{'hf' if kind == 'clap-fused' else kind}:{folder}"


def naive_backbone(files: list[Path], backbone: str, out: Path, seconds: float) -> float:
    """The seeds' loop around one backbone: one file at a time, read, resample, embed, np.save."""
    from embed import registry

    started = time.perf_counter()
    model = registry.load(backbone, "", "cpu", "fp32", None, registry.revision_for(backbone, ""))
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        wave = soxr.resample(audio.mean(axis=1), rate, model.sample_rate)[:int(seconds * model.sample_rate)]
        vectors = model.embed([wave.astype(np.float32)])
        np.save(out / f"{path.stem}.npy", next(iter(vectors.values()))[0])
    return time.perf_counter() - started


def time_backbone(index: int, spec: str, files: list[Path], work: Path, cfg: BenchConfig) -> dict[str, list]:
    """One registered backbone's naive loop and the engine on the same clips, interleaved."""
    from embed.registry import default_name

    backbone = tiny_backbone(spec[len("tiny:"):], work) if spec.startswith("tiny:") else spec
    label = spec if spec.startswith("tiny:") else default_name(backbone)
    out = work / f"naive-{index}"
    out.mkdir()
    return interleaved({
        f"{label} naive loop": lambda: (naive_backbone(files[:cfg.clips], backbone, out, cfg.seconds), None, None),
        f"{label} engine": lambda: timed(engine_run(backbone, f"bench-{index}", cfg, "clips", device="cpu")),
    }, cfg.rounds)


def engine_run(backbone: str, name: str, cfg: BenchConfig, dataset: str, **options):
    from embed.engine import EmbedConfig, run

    with redirect_stderr(io.StringIO()):
        return run(EmbedConfig(dataset=dataset, backbone=backbone, name=name, batch_size=cfg.batch_size,
                               loader_workers=cfg.loader_workers, max_seconds=cfg.seconds, force=True, **options))


def interleaved(runs: dict[str, Callable[[], tuple]], rounds: int) -> dict[str, list]:
    """{name: [(seconds, in-model share, seconds per clip after loading), ...]}: every run once
    per round, in turn, so a neighbour's
    load on a shared machine lands on all of them alike rather than on whichever ran at the time."""
    times: dict[str, list] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, one in runs.items():
            times[name].append(one())
    return times


def timed(result) -> tuple[float, float, float]:
    return result.seconds, share(result), (result.seconds - result.load_seconds) / max(1, result.embedded)


def add_rows(rows: list, times: dict[str, list], clips: int) -> None:
    """Medians of the rounds; the first run is the baseline of the others."""
    baseline_runs = next(iter(times.values()))
    baseline = statistics.median(t for t, *_ in baseline_runs)
    for name, runs in times.items():
        seconds = statistics.median(t for t, *_ in runs)
        shares = [s for _, s, *_ in runs if s is not None]
        per_clip = [c for *_, c in runs if c is not None]
        rows.append((name, clips, seconds, statistics.median(shares) if shares else None, baseline / seconds,
                     [first[0] / t for first, (t, *_) in zip(baseline_runs, runs)],
                     statistics.median(per_clip) if per_clip else None))


def forward_ceiling(model_dir: Path, clip: Path, reps: int) -> dict[str, float]:
    """Seconds of one clip's forward, median of `reps` interleaved calls: the naive loop's, and
    the engine's backbone in fp32 and in bf16 (inside one autocast region, as a shard runs).
    Whatever the engine does around the forward, its job ratio cannot beat these."""
    from transformers import AutoFeatureExtractor, AutoModel

    from embed.hf import load_hf

    audio, rate = sf.read(clip, dtype="float32")
    wave = soxr.resample(audio.mean(axis=1), rate, 24000).astype(np.float32)
    model = AutoModel.from_pretrained(model_dir).eval()
    inputs = AutoFeatureExtractor.from_pretrained(model_dir)(wave, sampling_rate=24000, return_tensors="pt")
    fp32, bf16 = (load_hf(f"hf:{model_dir}", device="cpu", precision=p) for p in ("fp32", "bf16"))

    def naive() -> None:
        with torch.no_grad():
            model(**inputs).last_hidden_state.mean(dim=1)

    def in_bf16() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16.embed([wave])

    runs = {"naive": naive, "fp32": lambda: fp32.embed([wave]), "bf16": in_bf16}
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        for one in runs.values():
            one()  # warm-up
        for _ in range(reps):
            for name, one in runs.items():
                started = time.perf_counter()
                one()
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


SHARD_CLIPS = 500           # a 256 MB shard of 30 s MP3s at ~0.5 MB each
CORPUS = 1_000_000
WORKER_START_S = 30.0       # a worker's process start, imports and model load, paid once per worker


def scale_note(rows: list, seconds: float) -> None:
    """The engine's measured seconds per clip, per shard, and for a 1M-clip corpus on N workers."""
    print(f"\nscale, from the medians above ({seconds:g} s clips, this machine's cores per worker; assumed: "
          f"{SHARD_CLIPS} clips a shard, {WORKER_START_S:g} s to start a worker, shards evenly spread, the lake's "
          "storage keeps up):")
    shards = -(-CORPUS // SHARD_CLIPS)
    for name, *_, per_clip in rows:
        if per_clip is None:
            continue
        shard_s = per_clip * SHARD_CLIPS
        hours = {n: (WORKER_START_S + -(-shards // n) * shard_s) / 3600 for n in (1, 8, 64, 512)}
        print(f"  {name:29} {per_clip:6.3f} s/clip  {shard_s / 60:6.1f} min/shard  1M clips: "
              + ", ".join(f"{h:,.1f} h on {n}" for n, h in hours.items()))


def forward_only(model_dir: Path, device: str, seconds: float, batches=(1, 2, 4, 8, 16)) -> tuple[int, float]:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir).to(device).eval()
    best = (1, 0.0)
    for batch in batches:
        x = torch.randn(batch, int(24000 * seconds), device=device)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(x)
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(3):
                model(x)
            torch.cuda.synchronize()
        rate = 3 * batch / (time.perf_counter() - started)
        best = max(best, (batch, rate), key=lambda b: b[1])
    return best


def vectors(dataset: str, name: str) -> np.ndarray:
    from lake.embeddings import load

    return load(dataset, name, label=None).matrix


def share(result) -> float:
    return result.model_seconds / (result.seconds - result.load_seconds)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    work = Path(tempfile.mkdtemp(prefix="audiolake-bench-embed-"))
    os.environ["AUDIOLAKE_ROOT"] = str(work / "lake")
    try:
        from ingest.api import ingest

        (work / "clips").mkdir()
        files = make_clips(work / "clips", cfg)
        with redirect_stderr(io.StringIO()):  # one dataset per model: the same clips, counts differ
            ingest("mert", source="folder", path=work / "clips", workers=1,
                   metadata=_subset(work, files[:cfg.clips], "mert"))
            ingest("musicnn", source="folder", path=work / "clips", workers=1,
                   metadata=_subset(work, files[:cfg.musicnn_clips], "musicnn"))
            ingest("clips", source="folder", path=work / "clips", workers=1,
                   metadata=_subset(work, files[:cfg.clips], "clips"))
        print(f"{cfg.clips} clips of {cfg.seconds:g} s (44.1 kHz stereo WAV), torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, batch_size={cfg.batch_size}")
        rows = []
        if "mert" in cfg.models:
            model_dir = mert_shaped(work / "mert-shaped")
            (work / "naive").mkdir()
            add_rows(rows, interleaved({
                "mert-shaped naive loop (fp32)": lambda: (naive_mert(files[:cfg.clips], model_dir, work / "naive",
                                                                     "cpu"), None, None),
                "mert-shaped engine fp32": lambda: timed(engine_run(f"hf:{model_dir}", "mert-fp32", cfg, "mert",
                                                                    device="cpu")),
                "mert-shaped engine bf16": lambda: timed(engine_run(f"hf:{model_dir}", "mert-bf16", cfg, "mert",
                                                                    device="cpu", precision="bf16")),
            }, cfg.rounds), cfg.clips)
            bf16_cos = cosine(vectors("mert", "mert-fp32"), vectors("mert", "mert-bf16"))
        if "musicnn" in cfg.models:
            (work / "naive-musicnn").mkdir()
            add_rows(rows, interleaved({
                "musicnn-mtt naive loop": lambda: (naive_musicnn(files[:cfg.musicnn_clips], work / "naive-musicnn"),
                                                   None, None),
                "musicnn-mtt engine": lambda: timed(engine_run("musicnn-mtt", "musicnn-mtt", cfg, "musicnn",
                                                               device="cpu")),
            }, cfg.rounds), cfg.musicnn_clips)
        for index, spec in enumerate(cfg.models):
            if spec not in ("mert", "musicnn"):
                add_rows(rows, time_backbone(index, spec, files, work, cfg), cfg.clips)
        print(f"\n{'CPU, median of ' + str(cfg.rounds) + ' rounds':31}{'clips':>6}{'seconds':>9}{'clips/s':>9}"
              f"{'in model':>10}{'vs naive':>10}  per round")
        for name, clips, secs, in_model, ratio, per_round, _ in rows:
            print(f"{name[:30]:31}{clips:6d}{secs:9.2f}{clips / secs:9.2f}"
                  f"{'' if in_model is None else f'{in_model:.1%}':>10}{ratio:9.2f}x  "
                  + " ".join(f"{r:.2f}" for r in per_round))
        print("(wall time includes model loading for both; 'in model' is the forward's share of the time after loading)")
        if "mert" in cfg.models and cfg.forward_reps:
            forward = forward_ceiling(model_dir, files[0], cfg.forward_reps)
            print(f"forward alone, one clip, median of {cfg.forward_reps} interleaved: naive {forward['naive']:.2f} s, "
                  f"engine fp32 {forward['fp32']:.2f} s ({forward['naive'] / forward['fp32']:.2f}x), engine bf16 "
                  f"{forward['bf16']:.2f} s ({forward['naive'] / forward['bf16']:.2f}x): the ceiling of the job ratios")
        scale_note(rows, cfg.seconds)
        if "mert" in cfg.models:
            print(f"\nbf16 vs fp32 vectors: mean cosine {bf16_cos:.5f} (expected >= 0.999)")
            print("targets (CPU): in-model share >= 95%; engine fp32 >= 1.0x naive; bf16 >= 1.8x naive")
        if torch.cuda.is_available() and "mert" in cfg.models:
            (work / "naive-gpu").mkdir()
            naive_gpu = naive_mert(files[:cfg.clips], model_dir, work / "naive-gpu", "cuda")
            gpu = engine_run(f"hf:{model_dir}", "mert-gpu", cfg, "mert", device="cuda")
            batch, forward_rate = forward_only(model_dir, "cuda", cfg.seconds)
            engine_rate = cfg.clips / gpu.seconds
            print(f"\nGPU {torch.cuda.get_device_name()}: naive {cfg.clips / naive_gpu:.1f} clips/s, engine "
                  f"{engine_rate:.1f} clips/s ({engine_rate * naive_gpu / cfg.clips:.1f}x naive, target >= 10x); "
                  f"forward-only best {forward_rate:.1f} clips/s at batch {batch} "
                  f"(engine {engine_rate / forward_rate:.0%} of it, target >= 70%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
