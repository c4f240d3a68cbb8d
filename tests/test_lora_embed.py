"""`backbone=lora:<run_id>`: re-embedding with a LoRA run's adapter merged into its hf: base.

The run is made here the way the LoRA head writes one (peft `save_pretrained` of a tiny HuBERT
with a few random non-zero `lora_B` weights, `unfrozen.safetensors`, `lora.json` with the head's
`heads.adapters.digest`, a `runs` row),
and the vectors are checked against a merge done by hand from the saved tensors.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file
from transformers import HubertModel

from conftest import write_clip
from embed import engine, store
from embed.engine import EmbedConfig, EmbedRefused
from embed.hf_source import files_digest
from ingest.api import ingest
from lake import catalog, paths

RANK, ALPHA = 4, 8
TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
UNFROZEN_KEY = "encoder.layers.1.attention.q_proj.weight"  # trained in full and adapted: order matters


def make_run(base_dir: Path, run_id: str, head: str = "lora", seed: int = 0, unfrozen: bool = True,
             revision: str = "") -> Path:
    """A run folder and runs row as the LoRA head writes them."""
    from peft import LoraConfig, get_peft_model

    from embed import adapters
    from heads import record

    folder = paths.runs_dir() / run_id
    model = HubertModel.from_pretrained(base_dir)
    trained_in_full = model.state_dict()[UNFROZEN_KEY]
    peft_model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: a fresh adapter changes nothing
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(folder / "adapter")
    if unfrozen:
        noise = 0.3 * torch.randn(trained_in_full.shape, generator=generator)
        save_file({UNFROZEN_KEY: (trained_in_full + noise).contiguous()},
                  folder / "unfrozen.safetensors")
    digest = adapters.digest(folder)
    (folder / "lora.json").write_text(json.dumps({
        "base": f"hf:{base_dir}", "revision": revision or files_digest(sorted(base_dir.glob("*.safetensors"))), "layer": "1", "sample_rate": 24000, "max_seconds": 30.0,
        "adapter_sha256": digest, "rank": RANK, "alpha": ALPHA, "target_modules": TARGETS,
        "unfreeze_layers": int(unfrozen)}))
    record.write_row({"run_id": run_id, "head": head, "dataset": "tiny", "backbones": [f"hf:{base_dir}"],
                      "layer": "1", "split_name": "default", "target": "label", "config": "{}", "metrics": "{}",
                      "packages": "{}", "git_commit": "unknown", "data_fingerprint": "x",
                      "created_at": datetime.now(timezone.utc), "path": str(folder.relative_to(paths.root()))})
    return folder


def hand_merged(base_dir: Path, folder: Path) -> HubertModel:
    """The base with the unfrozen weights set, then W += alpha/r · B·A for every adapted module."""
    model = HubertModel.from_pretrained(base_dir).eval()
    weights = model.state_dict()
    weights.update(load_file(folder / "unfrozen.safetensors") if (folder / "unfrozen.safetensors").is_file() else {})
    adapter = load_file(folder / "adapter" / "adapter_model.safetensors")
    for key in [k for k in adapter if k.endswith("lora_A.weight")]:
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        delta = adapter[key.replace("lora_A", "lora_B")] @ adapter[key]
        weights[f"{module}.weight"] = weights[f"{module}.weight"] + ALPHA / RANK * delta
    model.load_state_dict(weights)
    return model


@pytest.fixture
def tiny(tmp_path) -> dict[str, np.ndarray]:
    """Three 24 kHz clips ingested as dataset `tiny`; {sha256 of the file: its samples}."""
    clips = {}
    for i, seconds in enumerate((0.5, 0.4, 0.5)):
        path = write_clip(tmp_path / "in" / f"c{i}.wav", seconds=seconds, rate=24000, seed=i)
        clips[hashlib.sha256(path.read_bytes()).hexdigest()] = sf.read(path, dtype="float32")[0]
    ingest("tiny", source="folder", path=tmp_path / "in", workers=1)
    return clips


def vectors(name: str, layer: str) -> dict[str, np.ndarray]:
    rows = catalog.connect().execute("SELECT sha256, emb FROM embeddings WHERE backbone = $b AND layer = $l",
                                     {"b": name, "l": layer}).fetchall()
    return {sha: np.asarray(emb, np.float32) for sha, emb in rows}


def embed(backbone: str, **options):
    return engine.run(EmbedConfig(dataset="tiny", backbone=backbone, device="cpu", loader_workers=0, **options))


def test_lora_vectors_are_the_hand_merged_models_and_not_the_bases(hubert_dir, tiny):
    folder = make_run(hubert_dir, "r1-lora")
    assert embed("lora:r1-lora").embedded == 3
    got = vectors("lora-r1-lora", "1")  # the run's layer by default
    model = hand_merged(hubert_dir, folder)
    with torch.no_grad():
        for sha, samples in tiny.items():
            hidden = model(torch.from_numpy(samples)[None], output_hidden_states=True).hidden_states[1]
            np.testing.assert_allclose(got[sha], hidden.mean(dim=1)[0].numpy(), atol=1e-4)
    assert embed(f"hf:{hubert_dir}", name="base", layers="1").embedded == 3
    base = vectors("base", "1")
    assert all(np.abs(got[sha] - base[sha]).max() > 1e-2 for sha in tiny)


def test_provenance_and_settings_name_the_base_and_the_adapter(hubert_dir, tiny):
    folder = make_run(hubert_dir, "r2-lora", unfrozen=False)
    digest = json.loads((folder / "lora.json").read_text())["adapter_sha256"]
    cfg = EmbedConfig(dataset="tiny", backbone="lora:r2-lora", device="cpu", loader_workers=0)
    assert cfg.name == "lora-r2-lora" and cfg.settings()["adapter_sha256"] == digest
    engine.run(cfg)
    row = store.read_backbone("lora-r2-lora")
    assert row["spec"] == "lora:r2-lora" and row["model_id"] == str(hubert_dir)
    assert row["revision"] == files_digest(sorted(hubert_dir.glob("*.safetensors")))  # the base's weights
    options = json.loads(row["packages"])
    assert options["adapter_sha256"] == digest and options["lora_run"] == "r2-lora"
    assert options["lora_base"] == f"hf:{hubert_dir}" and "peft" in options
    assert json.loads(row["settings"])["adapter_sha256"] == digest


def test_another_adapter_under_the_same_name_is_refused(hubert_dir, tiny):
    make_run(hubert_dir, "r3-lora", seed=1, unfrozen=False)
    make_run(hubert_dir, "r4-lora", seed=2, unfrozen=False)
    embed("lora:r3-lora", name="adapted")
    with pytest.raises(EmbedRefused, match="adapter_sha256="):
        embed("lora:r4-lora", name="adapted")


def test_a_changed_adapter_file_fails_in_one_line(hubert_dir, tiny):
    folder = make_run(hubert_dir, "r5-lora")
    weights = folder / "adapter" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"lora:r5-lora: adapter/ \+ unfrozen.safetensors in .*r5-lora hash to .* not the adapter_sha256") as err:
        EmbedConfig(dataset="tiny", backbone="lora:r5-lora", device="cpu")
    assert "\n" not in str(err.value) and "changed after training" in str(err.value)


def test_unknown_runs_other_heads_and_missing_files_fail_in_one_line(hubert_dir, tiny):
    make_run(hubert_dir, "r6-probe", head="probe", unfrozen=False)
    folder = make_run(hubert_dir, "r7-lora", unfrozen=False)
    (folder / "adapter" / "adapter_config.json").unlink()
    for backbone, expected in [("lora", "backbone=lora needs a run: lora:<run_id>"),
                               ("lora:nope", "run 'nope' is not in the runs table"),
                               ("lora:r6-probe", "r6-probe is a probe run, not a LoRA run"),
                               ("lora:r7-lora", "adapter_config.json is missing")]:
        with pytest.raises(ValueError, match=expected) as err:
            EmbedConfig(dataset="tiny", backbone=backbone, device="cpu")
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="revision=abc: lora:nope loads its base at the revision the run trained on"):
        EmbedConfig(dataset="tiny", backbone="lora:nope", revision="abc")


def test_the_embed_command_says_it_in_one_line(hubert_dir, tiny, capsys):
    from embed.__main__ import main
    from lake.cli import run_main

    with pytest.raises(SystemExit) as exit_:
        run_main(main, ["dataset=tiny", "backbone=lora:nope", "device=cpu"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "run 'nope' is not in the runs table" in err and "\n" not in err


def test_a_base_whose_weights_changed_since_training_is_refused(hubert_dir, tiny):
    make_run(hubert_dir, "r8-lora", unfrozen=False, revision="sha256:0123456789abcdef")
    with pytest.raises(EmbedRefused, match="its base hf:.* now loads weights sha256:.*, not sha256:0123456789ab"):
        embed("lora:r8-lora")


def test_a_run_trained_by_the_lora_head_re_embeds(hubert_dir, tmp_path):
    """head=lora trains and writes the run; lora:<run_id> then stores what the run's own restore gives."""
    from lora_lake import tone_lake

    from embed.hf import load_hf
    from heads import lora as lora_head
    from embed import adapters
    from heads.train import train_config
    from lake.cli import parse_config

    tone_lake(tmp_path / "tones", per_class=2)
    cfg = parse_config(lora_head.Config, {"dataset": "tones", "backbone": f"hf:{hubert_dir}", "target": "label",
                                          "layer": "2", "epochs": "1", "batch_size": "4", "workers": "0",
                                          "lr": "0.05", "device": "cpu", "unfreeze_layers": "1"})
    run = train_config("lora", cfg)
    result = engine.run(EmbedConfig(dataset="tones", backbone=f"lora:{run.run_id}", device="cpu", loader_workers=0))
    assert result.embedded == 4 and not result.failures
    name = f"lora-{run.run_id}"
    got = {track: np.asarray(emb, np.float32) for track, emb in catalog.connect().execute(
        "SELECT track_id, emb FROM embeddings WHERE backbone = $b AND layer = '2'", {"b": name}).fetchall()}
    base = load_hf(f"hf:{hubert_dir}", layers="2")
    restored = load_hf(f"hf:{hubert_dir}", layers="2")
    restored.module = adapters.restore(restored.module, run.folder).eval()
    clips = engine.dataset_clips("tones")
    from embed.loader import BatchDataset

    reader = BatchDataset(paths.root(), [], base.sample_rate, 30.0, "crop")
    for clip in [c for shard in clips.values() for c in shard]:
        wave = reader.one(clip).chunks[0]
        np.testing.assert_allclose(got[clip.track_id], restored.embed([wave])["2"][0], atol=1e-4)
        assert np.abs(got[clip.track_id] - base.embed([wave])["2"][0]).max() > 1e-3
    row = store.read_backbone(name)
    assert json.loads(row["settings"])["adapter_sha256"] == json.loads((run.folder / "lora.json").read_text())[
        "adapter_sha256"]
