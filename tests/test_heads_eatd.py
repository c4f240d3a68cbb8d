"""Seed 002 end to end on a miniature EATD-Corpus written here: ingest → embed (a tiny hf:
model, all layers, and logmel) → split from the corpus's own t_/v_ folders → probes for the
depression label and the affect of the answer → the backbone comparison table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from rich.console import Console

from embed import engine
from embed.engine import EmbedConfig
from heads import compare
from heads.train import train
from ingest.api import ingest
from lake import catalog, paths
from lake.splits import SplitConfig
from lake.splits import run as make_split

RAW_SDS = {"t_1": 45, "t_2": 30, "t_3": 50, "t_4": 32, "t_5": 35, "t_6": 44, "v_1": 46, "v_2": 31, "v_3": 33}


def eatd_tree(root: Path) -> Path:
    """Subjects with the three answers as raw wavs and label.txt (raw SDS; ×1.25 ≥ 53 is depressed)."""
    for n, (subject, raw) in enumerate(RAW_SDS.items()):
        folder = root / "EATD-Corpus" / subject
        folder.mkdir(parents=True)
        for i, affect in enumerate(("positive", "neutral", "negative")):
            rng = np.random.default_rng(10 * n + i)
            t = np.arange(4000) / 16000
            wave = 0.2 * np.sin(2 * np.pi * (150 + 100 * i) * t) + rng.normal(0, 0.05, len(t))
            sf.write(folder / f"{affect}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
        (folder / "label.txt").write_text(str(raw))
    return root


def test_eatd_probe_flow_ends_in_the_compare_table(tmp_path, wav2vec2_dir, capsys):
    ingest("eatd", source="eatd", path=eatd_tree(tmp_path / "corpus"), workers=1)
    engine.run(EmbedConfig(dataset="eatd", backbone=f"hf:{wav2vec2_dir}", name="tiny", layers="all", loader_workers=0))
    engine.run(EmbedConfig(dataset="eatd", backbone="logmel", loader_workers=0))
    quiet = Console(quiet=True)
    assert make_split(SplitConfig(dataset="eatd", name="source", from_source=True, group=("speaker_id",)), quiet) == 0

    for target in ("label", "affect_label"):
        tiny = train("probe", dataset="eatd", backbone="tiny", layer="all", target=target, split="source")
        assert tiny.row["layer"] in tiny.metrics["layers"] and len(tiny.metrics["layers"]) >= 3
        assert "test" not in tiny.metrics and tiny.metrics["val"]["n"] == 9  # EATD's own split: train/val only
        train("probe", dataset="eatd", backbone="logmel", target=target, split="source")
    label = train("probe", dataset="eatd", backbone="logmel", target="label", split="source")
    assert set(label.metrics["val"]["per_class_accuracy"]) == {"depressed", "not_depressed"}
    assert "roc_auc" in label.metrics["val"]

    con = catalog.connect()
    assert con.execute("SELECT count(*) FROM runs WHERE dataset = 'eatd'").fetchone()[0] == 5

    rows = {t: compare.rows("eatd", "probe", t) for t in ("label", "affect_label")}
    assert sorted(r["backbone"] for r in rows["label"]) == ["logmel", "tiny"]
    assert next(r for r in rows["label"] if r["backbone"] == "logmel")["run_id"] == label.run_id  # the latest
    assert [k for k in rows["affect_label"][0]["headline"] if k.startswith("per_class_accuracy[")] == [
        "per_class_accuracy[negative]", "per_class_accuracy[neutral]", "per_class_accuracy[positive]"]
    assert all(r["eval_split"] == "val" and r["n"] == 9 for rs in rows.values() for r in rs)

    assert compare.main(["dataset=eatd", "target=affect_label", "format=md"]) == 0
    table = capsys.readouterr().out
    assert "acc[negative]" in table and "| logmel |" in table and "| tiny |" in table and "(best of" in table
    assert (paths.reports_dir("eatd") / "compare-probe-affect_label.md").is_file()
