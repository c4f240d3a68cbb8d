"""`python -m heads.lora_demo [dataset=demo] [target=label] [max_seconds=0.25] [where=...]`: frozen vs LoRA in one table.

The demo's line for the lora head, cheap enough for `just demo`: the tests' tiny random HuBERT
(24 kHz, 2 blocks, 32-d; embed/tiny_models.py) saved with `save_pretrained` under
`$AUDIOLAKE_ROOT/models/tiny-hubert`, embedded as the stored name `tiny-hubert` (short crops),
a frozen probe on those vectors, two LoRA epochs of the same model on the same split, target and
layer, and `just compare head=lora`. A random 32-d model shows the machinery and the table, not
what LoRA buys a real backbone. Reruns reuse the model, the vectors and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lake import paths
from lake.cli import key_values, make_console, parse_config, run_main


@dataclass
class DemoConfig:
    dataset: str = "demo"
    target: str = "label"
    split: str = "default"
    max_seconds: float = 0.25
    epochs: int = 2
    where: str = "culture = 'west'"   # a quarter of the demo: one LoRA epoch in seconds on a CPU


def tiny_hubert() -> Path:
    """The tests' tiny random HuBERT, saved once under the lake's models/ folder."""
    from embed.tiny_models import hubert

    folder = paths.root() / "models" / "tiny-hubert"
    if not (folder / "config.json").exists():
        hubert(folder)
    return folder


def main(argv: list[str]) -> int:
    from embed import engine
    from embed.engine import EmbedConfig
    from heads import compare
    from heads.train import train

    cfg = parse_config(DemoConfig, key_values(argv))
    quiet = make_console(stderr=True, quiet=True)
    spec = f"hf:{tiny_hubert()}"
    embed = EmbedConfig(dataset=cfg.dataset, backbone=spec, max_seconds=cfg.max_seconds, batch_size=32, loader_workers=1)
    engine.finish(embed, engine.run(embed, quiet))
    keys = dict(dataset=cfg.dataset, target=cfg.target, split=cfg.split, where=cfg.where)
    train("probe", backbone=embed.name, **keys)
    train("lora", backbone=spec, epochs=cfg.epochs, batch_size=8, workers=1, lr=1e-3, head_lr=3e-2, **keys)
    return compare.main([f"dataset={cfg.dataset}", "head=lora", f"target={cfg.target}", f"split={cfg.split}"])


if __name__ == "__main__":
    run_main(main)
