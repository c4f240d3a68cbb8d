"""Training throughput and peak memory: LoRA vs full fine-tuning vs the frozen forward, same clips, one run.

Model: a MERT-shaped randomly initialised HuBERT (12 layers × 768, 24 kHz input; bench/embed.py's
`mert_shaped`), loaded through `hf:<dir>` as head=lora loads it. Data: `clips` 44.1 kHz stereo WAV
clips of 1.5 × `seconds`, ingested into a scratch lake and streamed as head=lora streams them
(`heads.lora_stream.ClipSet`: byte-range read from the shards, decode, mono, resample, a random
`seconds` crop) through a DataLoader with `workers` processes. Each mode runs the same batches:

- frozen: the backbone's forward only, under inference mode (what embedding costs per clip);
- lora:   `heads.adapters.adapt` (rank, alpha on q/k/v/out) + head=lora's Net (pooled layer →
          LayerNorm → Linear), forward, backward, AdamW step — head=lora's own step;
- full:   the same Net with every backbone weight trainable (full fine-tuning).

Each (mode, round) is its own process, so its peak memory is its own: peak RSS from
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (the DataLoader workers are other processes, not
counted), and the training's share of it (peak minus the RSS once the model is built, before the
first batch); on CUDA, `torch.cuda.max_memory_allocated`. The modes run interleaved A B C A B C
for `rounds` rounds and their medians are compared (a neighbour's load on a shared machine lands
on all of them alike); ratios are against `frozen` measured in the same run. The first batch of
each run (worker start, allocator warm-up) is not timed. Data wait: the time the step loop spent
blocked on the DataLoader, as a share of the loop's time (target < 5% with workers).

    python bench/lora.py [clips=8] [seconds=5] [batch_size=2] [workers=2] [rounds=3] [rank=8] [modes=frozen,lora,full]
"""
from __future__ import annotations

import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext, redirect_stderr
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lake.cli import parse_config, run_main, split_args  # noqa: E402

MODES = ("frozen", "lora", "full")
LAYER = "last"


@dataclass
class BenchConfig:
    clips: int = 8             # per run; the first batch is a warm-up, not timed
    seconds: float = 5.0       # the random crop each clip is cut to (the clips are 1.5x longer)
    batch_size: int = 2
    workers: int = 2           # DataLoader processes decoding while the model trains (head=lora's default)
    rounds: int = 3            # each mode once per round, A B C A B C ...; medians are compared
    rank: int = 8
    alpha: float = 16.0
    layers: int = 12           # transformer blocks of the random model (12: MERT-v1-95M's)
    hidden: int = 768
    modes: tuple[str, ...] = MODES
    device: str = "cpu"
    precision: str = "fp32"    # fp32 | bf16 (autocast, as head=lora on a device that has it)
    only: str = ""             # internal: run this one mode in this process, print its figures as JSON
    work: str = ""             # internal: the scratch folder (lake + model) the parent prepared

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"modes={','.join(self.modes)}: no mode {unknown[0]!r} (modes: {', '.join(MODES)})")
        for key in ("clips", "batch_size", "rounds", "rank", "layers", "hidden"):
            if not getattr(self, key) >= 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be 1 or more")
        if self.clips < 2 * self.batch_size:
            raise ValueError(f"clips={self.clips}: at least two batches (2 × batch_size={self.batch_size}), the "
                             "first being a warm-up")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={self.precision}: fp32 or bf16")


# -- the parent: data, model, interleaved runs ---------------------------------------------------

def make_clips(folder: Path, cfg: BenchConfig) -> None:
    rng = np.random.default_rng(0)
    rate, frames = 44100, int(1.5 * cfg.seconds * 44100)
    t = np.arange(frames) / rate
    folder.mkdir(parents=True)
    for i in range(cfg.clips):
        wave = 0.2 * np.sin(2 * np.pi * (110 + 30 * i) * t)[:, None] + rng.normal(0, 0.02, (frames, 2))
        sf.write(folder / f"clip{i:03d}.wav", wave.astype(np.float32), rate, subtype="PCM_16")


def mert_shaped(directory: Path, cfg: BenchConfig) -> Path:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=cfg.hidden, num_hidden_layers=cfg.layers, num_attention_heads=12,
                          intermediate_size=4 * cfg.hidden, feat_extract_norm="layer", do_stable_layer_norm=True)
    HubertModel(config).eval().save_pretrained(directory)
    Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True, return_attention_mask=True,
                             feature_size=1, padding_value=0.0).save_pretrained(directory)
    return directory


def one_run(cfg: BenchConfig, mode: str, work: Path) -> dict:
    """One mode in a fresh process (its own peak memory); its last stdout line is the figures."""
    keys = {k: v for k, v in asdict(cfg).items() if k not in ("only", "work", "modes")}
    argv = [f"{k}={v}" for k, v in keys.items()] + [f"only={mode}", f"work={work}"]
    done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                          env={**os.environ, "AUDIOLAKE_ROOT": str(work / "lake")})
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"mode={mode} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(cfg: BenchConfig, runs: dict[str, list[dict]]) -> None:
    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    base = "frozen" if "frozen" in runs else next(iter(runs))
    print(f"\n{'median of ' + str(cfg.rounds) + ' rounds':22}{'clips/s':>9}{'vs ' + base:>11}{'data wait':>11}"
          f"{'peak RSS':>10}{'training':>10}{'trainable':>12}  clips/s per round")
    for mode in runs:
        rate = median(mode, "clips_per_s")
        gpu = f"{median(mode, 'cuda_peak_mb'):9.0f}M" if "cuda_peak_mb" in runs[mode][0] else ""
        print(f"{mode:22}{rate:9.3f}{rate / median(base, 'clips_per_s'):10.2f}x{median(mode, 'wait_share'):10.1%}"
              f"{median(mode, 'peak_rss_mb'):9.0f}M{median(mode, 'training_mb'):9.0f}M"
              f"{runs[mode][0]['trainable']:12,}  " + " ".join(f"{r['clips_per_s']:.3f}" for r in runs[mode])
              + (f"  cuda peak {gpu}" if gpu else ""))
    print("peak RSS: resource.getrusage ru_maxrss of the run's process (DataLoader workers not counted); "
          "training: that peak minus the RSS once the model was built")
    print(f"target: data wait < 5% with workers={cfg.workers}")


def main(argv: list[str]) -> int:
    pairs, _ = split_args(argv)
    cfg = parse_config(BenchConfig, pairs)
    if cfg.only:
        print(json.dumps(measure(cfg, cfg.only, Path(cfg.work))))
        return 0
    work = Path(tempfile.mkdtemp(prefix="audiolake-bench-lora-"))
    os.environ["AUDIOLAKE_ROOT"] = str(work / "lake")
    try:
        from ingest.api import ingest

        make_clips(work / "clips", cfg)
        with redirect_stderr(io.StringIO()):
            ingest("clips", source="folder", path=work / "clips", workers=1)
        mert_shaped(work / "model", cfg)
        print(f"{cfg.clips} clips, random {cfg.seconds:g} s crops of {1.5 * cfg.seconds:g} s 44.1 kHz stereo WAV; "
              f"HuBERT {cfg.layers} × {cfg.hidden} at 24 kHz (MERT-shaped when 12 × 768); batch {cfg.batch_size}, "
              f"workers={cfg.workers}, {cfg.device} {cfg.precision}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads; LoRA rank {cfg.rank}, alpha {cfg.alpha:g}")
        runs: dict[str, list[dict]] = {mode: [] for mode in cfg.modes}
        for round_ in range(cfg.rounds):
            for mode in cfg.modes:
                runs[mode].append(one_run(cfg, mode, work))
            # every figure as it comes: a run cut short by a time limit still leaves its rounds
            print(f"round {round_ + 1}: " + "; ".join(
                f"{m} {r['clips_per_s']:.3f} clips/s, wait {r['wait_share']:.1%}, peak {r['peak_rss_mb']:.0f} MB "
                f"(training {r['training_mb']:.0f} MB)" for m in runs for r in runs[m][-1:]), flush=True)
        report(cfg, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# -- the child: one mode ---------------------------------------------------------------------------

def rss_mb() -> float:
    """Resident set size now (Linux /proc), in MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def build(cfg: BenchConfig, mode: str, work: Path):
    """(backbone, step(waves) -> None, trainable count) for one mode, as head=lora builds its model."""
    from embed.hf import load_hf
    from embed import adapters
    from heads import lora

    torch.manual_seed(0)
    backbone = load_hf(f"hf:{work / 'model'}", layers=LAYER, device=cfg.device)
    autocast = (lambda: torch.autocast(backbone.device.type, dtype=torch.bfloat16)) if cfg.precision == "bf16" \
        else nullcontext
    if mode == "frozen":
        def step(waves):
            with autocast():
                backbone.embed(waves)
        return backbone, step, 0
    if mode == "lora":
        adapters.adapt(backbone.module, adapters.Settings(rank=cfg.rank, alpha=cfg.alpha))
    else:
        backbone.module.requires_grad_(True)
    net = lora.Net(backbone, lora.head_module(backbone.dim, 10), LAYER).to(backbone.device)
    net.train()
    trainable = [p for p in net.encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": trainable, "lr": 1e-4}, {"params": list(net.head.parameters()),
                                                                        "lr": 1e-3}], weight_decay=0.01)
    targets = torch.arange(cfg.batch_size, device=backbone.device) % 10

    def train_step(waves):
        with autocast():
            out = net(waves)
        loss = torch.nn.functional.cross_entropy(out.float(), targets[:len(waves)])
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
    return backbone, train_step, sum(p.numel() for p in trainable)


def measure(cfg: BenchConfig, mode: str, work: Path) -> dict:
    from embed.engine import dataset_clips
    from heads import lora_stream

    clips = [c for shard in dataset_clips("clips").values() for c in shard][:cfg.clips]
    backbone, step, trainable = build(cfg, mode, work)
    cuda = backbone.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    built_mb = rss_mb()
    dataset = lora_stream.ClipSet(clips, backbone.sample_rate, cfg.seconds, "crop", crop=True, seed=0, epoch=0)
    plan = lora_stream.batches(np.arange(len(clips)), cfg.batch_size)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=plan, collate_fn=lora_stream.as_is,
                                         num_workers=cfg.workers, prefetch_factor=2 if cfg.workers else None)
    waited = timed_clips = 0.0
    batches = iter(loader)
    step([chunks[0] for _, chunks, _ in next(batches)])  # warm-up: workers start, allocator fills
    started = time.perf_counter()
    while True:
        asked = time.perf_counter()
        items = next(batches, None)
        waited += time.perf_counter() - asked
        if items is None:
            break
        step([chunks[0] for _, chunks, _ in items])
        timed_clips += len(items)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    figures = {"clips_per_s": timed_clips / seconds, "wait_share": waited / seconds, "peak_rss_mb": peak_rss_mb(),
               "training_mb": peak_rss_mb() - built_mb, "trainable": trainable}
    if cuda:
        figures["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return figures


if __name__ == "__main__":
    run_main(main)
