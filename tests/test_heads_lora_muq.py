"""head=lora on MuQ: peft LoRA on a tiny random MuQ's conformer attention (q/k/v/out, seed 001's
targets), trained on clips streamed from real shards (tests/lora_lake.py)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import lora_lake
import tiny_models
from embed import adapters, registry
from heads import lora
from heads.train import train

if importlib.util.find_spec("muq") is None:  # installed but broken is a failure, not a skip
    pytest.skip("the [music] extra is not installed", allow_module_level=True)

FAST = dict(dataset="tones", target="label", batch_size=4, workers=0, lr=3e-3, head_lr=1e-2)
MUQ_TARGETS = ["linear_q", "linear_k", "linear_v", "linear_out"]


@pytest.fixture(scope="module")
def muq_dir(tmp_path_factory) -> Path:
    return tiny_models.muq(tmp_path_factory.mktemp("muq") / "tiny-muq")


def base_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    module = registry.load(f"muq:{model_dir}", "last", "cpu", "fp32", None).module
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_a_muq_lora_run_lowers_the_loss_and_changes_only_adapters_and_head(tmp_path, muq_dir):
    lora_lake.tone_lake(tmp_path / "in", per_class=6, seconds=0.25)
    before = base_weights(muq_dir)
    # layer 2 is the tiny MuQ's last (every adapted block is on the way; layer 1 would leave block 1's
    # adapters without a gradient, which is an error: tests/test_heads_lora.py)
    run = train("lora", backbone=f"muq:{muq_dir}", layer="2", epochs=3, **FAST)
    losses = [h["train_loss"] for h in run.metrics["history"]]
    assert losses[-1] < losses[0]
    info = json.loads((run.folder / "lora.json").read_text())
    assert info["base"] == f"muq:{muq_dir.resolve()}" and info["layer"] == "2" and info["sample_rate"] == 24000
    assert info["target_modules"] == MUQ_TARGETS and info["adapter_sha256"] == adapters.digest(run.folder)
    assert not (run.folder / "unfrozen.safetensors").exists()
    # the saved model is the checkpoint's weights, bitwise, plus non-zero adapters on every target
    net, _ = lora.load_run(run.folder)
    after = {adapters._base_name(k): v for k, v in net.encoder.state_dict().items() if "lora_" not in k}
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    trained_b = {k: v for k, v in net.encoder.state_dict().items() if "lora_B" in k}
    assert len(trained_b) == 2 * len(MUQ_TARGETS) and all(v.abs().sum() > 0 for v in trained_b.values())
    # lora:<run> re-embeds hf: bases only: a MuQ base is refused in one line
    with pytest.raises(ValueError, match=r"is not an hf: backbone; lora: re-embeds hf: bases only"):
        registry.load(f"lora:{run.run_id}", "", "cpu", "fp32", None)


def test_unfreeze_layers_finds_the_conformer_blocks_and_muq_mulan_is_refused(muq_dir):
    module = registry.load(f"muq:{muq_dir}", "last", "cpu", "fp32", None).module
    assert adapters.blocks(module) is module.model.conformer.layers
    names = adapters.unfreeze_names(module, 1)
    assert names and all(n.startswith("model.conformer.layers.1.") for n in names)
    assert adapters.default_targets(module) == tuple(MUQ_TARGETS)
    with pytest.raises(ValueError, match="head=lora adapts"):
        lora.Config(dataset="tones", target="label", backbone="muq-mulan")
