"""The lora head: peft LoRA on tiny random HuBERT/wav2vec2-style and Whisper encoders, trained on
clips streamed from real shards (tests/lora_lake.py)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lora_lake
from embed.hf import load_hf
from embed import adapters
from heads import compare, lora
from embed import engine
from embed.engine import EmbedConfig
from heads.data import SelectionError
from heads.train import train

FAST = dict(dataset="tones", target="label", batch_size=4, workers=0, lr=3e-3, head_lr=1e-2)


@pytest.fixture
def tones(tmp_path):
    return lora_lake.tone_lake(tmp_path / "in", per_class=6, seconds=0.25)


def base_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_hf(f"hf:{model_dir}").module.state_dict().items()}


def test_a_lora_run_lowers_the_loss_and_changes_only_adapters_and_head(tones, hubert_dir):
    run = train("lora", backbone=f"hf:{hubert_dir}", epochs=3, **FAST)
    losses = [h["train_loss"] for h in run.metrics["history"]]
    assert losses[-1] < losses[0]
    assert run.row["head"] == "lora" and run.row["backbones"] == [hubert_dir.name] and run.row["layer"] == "last"
    info = json.loads((run.folder / "lora.json").read_text())
    assert info["base"] == f"hf:{hubert_dir}" and info["layer"] == "last" and info["sample_rate"] == 24000
    assert info["target_modules"] == ["q_proj", "k_proj", "v_proj", "out_proj"] and info["unfreeze_layers"] == 0
    assert info["adapter_sha256"] == adapters.digest(run.folder)
    assert (run.folder / "adapter" / "adapter_config.json").exists() and not (run.folder / "unfrozen.safetensors").exists()
    # the base weights the adapters ride on are bitwise those of the checkpoint
    net, _ = lora.load_run(run.folder)
    before = base_weights(hubert_dir)
    after = {adapters._base_name(k): v for k, v in net.encoder.state_dict().items() if "lora_" not in k}
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    trained_b = [v for k, v in net.encoder.state_dict().items() if "lora_B" in k]
    assert trained_b and all(v.abs().sum() > 0 for v in trained_b)
    assert not list(Path(os.environ["AUDIOLAKE_ROOT"], "runs", ".work").glob("lora-*"))  # finished: no checkpoint left
    # frozen vs LoRA: a probe on stored vectors of the same name and layer sits beside the LoRA run
    engine.run(EmbedConfig(dataset="tones", backbone=f"hf:{hubert_dir}", loader_workers=0))
    train("probe", backbone=hubert_dir.name, dataset="tones", target="label")
    found = {(r["backbone"], r["layer"], r["variant"]): r for r in compare.rows("tones", "lora", "label", "default")}
    assert set(found) == {(hubert_dir.name, "last", ""), (hubert_dir.name, "last", "lora r8")}
    assert found[(hubert_dir.name, "last", "lora r8")]["headline"]["accuracy"] == run.metrics["test"]["accuracy"]
    assert [r["variant"] for r in compare.rows("tones", "probe", "label")] == ["", "lora r8"]


def test_adapters_reload_and_give_identical_predictions_whisper_with_unfrozen_block(tones, whisper_dir, monkeypatch):
    kept = {}
    original = lora.train

    def keep(cfg, data, seed):
        kept["trained"], kept["data"] = original(cfg, data, seed), data
        return kept["trained"]

    monkeypatch.setattr(lora, "train", keep)
    run = train("lora", backbone=f"hf:{whisper_dir}", epochs=1, unfreeze_layers=1, gradient_checkpointing=True,
                max_seconds=0.25, **FAST)
    assert (run.folder / "unfrozen.safetensors").exists()
    info = json.loads((run.folder / "lora.json").read_text())
    assert info["unfreeze_layers"] == 1 and info["adapter_sha256"] == adapters.digest(run.folder)
    data, net = kept["data"], kept["trained"].estimator
    audio = (16000, 0.25, "crop")
    clips = [data.clips[i] for i in np.flatnonzero(data.part("test"))]
    reloaded, reloaded_audio = lora.load_run(run.folder)
    assert reloaded_audio == audio
    assert np.array_equal(lora.predict(net, clips, audio), lora.predict(reloaded, clips, audio))


def test_a_run_killed_mid_epoch_resumes_to_the_same_adapters(tones, wav2vec2_dir, monkeypatch):
    keys = dict(backbone=f"hf:{wav2vec2_dir}", epochs=1, checkpoint_every=2, **{**FAST, "batch_size": 2})

    def kill(step):  # step 3 of 4 in the first epoch: the checkpoint of step 2 is the last one
        if step == 3:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(lora, "after_step", kill)
    with pytest.raises(KeyboardInterrupt):
        train("lora", **keys)
    assert list(Path(os.environ["AUDIOLAKE_ROOT"], "runs", ".work").glob("lora-*/checkpoint.pt"))
    monkeypatch.setattr(lora, "after_step", None)
    resumed = train("lora", **keys)
    assert resumed.metrics["resumed_from_step"] == 2 and resumed.metrics["steps"] == 4
    whole = train("lora", **keys)  # uninterrupted, from scratch: the checkpoint went with the finished run
    assert whole.metrics["resumed_from_step"] == 0
    assert json.loads((whole.folder / "lora.json").read_text())["adapter_sha256"] == \
        json.loads((resumed.folder / "lora.json").read_text())["adapter_sha256"]


def test_target_modules_that_do_not_exist_fail_in_one_line(tones, hubert_dir):
    with pytest.raises(SelectionError) as err:
        train("lora", backbone=f"hf:{hubert_dir}", target_modules="q_proj,query_key", epochs=1, **FAST)
    assert "\n" not in str(err.value) and "HubertModel has no query_key" in str(err.value)


def test_adapters_the_pooled_layer_never_reaches_are_an_error_not_silence(tones, hubert_dir):
    # layer 0 is the input of the first block: no adapter is on the way, every grad stays None
    with pytest.raises(SelectionError, match=r"got no gradient \(e.g. .*lora_A.*: grad=None\)"):
        train("lora", backbone=f"hf:{hubert_dir}", layer="0", epochs=1, **FAST)


def test_a_middle_layer_gets_adapters_only_in_the_blocks_it_passes_through(tones, hubert_dir):
    """layer=1 of 2 blocks: before, the second block's adapters had no gradient and the run stopped."""
    run = train("lora", backbone=f"hf:{hubert_dir}", layer="1", unfreeze_layers=1, epochs=2, **FAST)
    info = json.loads((run.folder / "lora.json").read_text())
    assert info["adapted_blocks"] == 1 and info["layer"] == "1"
    net, _ = lora.load_run(run.folder)
    adapted = {k for k in net.encoder.state_dict() if "lora_B" in k}
    assert adapted and all(".layers.0." in k for k in adapted)
    assert all(v.abs().sum() > 0 for k, v in net.encoder.state_dict().items() if "lora_B" in k)
    from safetensors.torch import load_file

    unfrozen = load_file(str(run.folder / "unfrozen.safetensors"))
    assert unfrozen and all(".layers.0." in k for k in unfrozen)  # the last block the layer passes through


def test_two_process_gloo_ddp_trains_on_disjoint_clips(tones, hubert_dir, lake_root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AUDIOLAKE_ROOT": str(lake_root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "-m", "heads",
         "head=lora", f"backbone=hf:{hubert_dir}", "epochs=1", *(f"{k}={v}" for k, v in FAST.items())],
        env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    (folder,) = [p for p in (lake_root / "runs").iterdir() if not p.name.startswith(".")]
    result = json.loads((folder / "metrics.json").read_text())
    spread = result["distributed"]
    assert spread["world_size"] == 2 and spread["backend"] == "gloo"
    assert spread["train_clips_by_rank"] == [4, 4] and spread["overlap_between_ranks"] == 0
    assert result["steps"] == 1 and (folder / "adapter" / "adapter_model.safetensors").exists()


def test_task_scorer_regresses_a_numeric_column_under_bf16_autocast(tones, hubert_dir):
    # the tones lake has no score: a clip's byte offset in its shard stands in for one (numeric, varied)
    # and bf16 autocast, which a CPU runs when asked (a CUDA device that has it by default)
    run = train("lora", backbone=f"hf:{hubert_dir}", task="scorer", epochs=1, precision="bf16",
                **{**FAST, "target": "offset"})
    assert set(run.metrics["test"]) >= {"n", "spearman", "mae"} and run.metrics["test"]["n"] == 2
    assert run.metrics["precision"] == "bf16" and np.isfinite(run.metrics["history"][0]["train_loss"])
    assert json.loads((run.folder / "lora.json").read_text())["task"] == "scorer"
    with pytest.raises(SelectionError, match="task=scorer needs a numeric score"):
        train("lora", backbone=f"hf:{hubert_dir}", task="scorer", epochs=1, **FAST)
