"""`qwen2-audio` (the audio tower alone, out of a sharded 7B checkpoint) and `clap-fused` (CLAP with
feature fusion for long clips), on tiny models built with transformers' own classes and saved in the
hub repos' layouts, loaded by their registered names from a Hugging Face cache with the hub unreachable.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny_models
from tiny_models import QWEN2_AUDIO_SHARDS, cached_repo, noise, no_hub  # noqa: F401  (no_hub is a fixture)

from embed import registry
from embed.hf_source import BackboneUnavailable

COMMIT = "5" * 40


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    return tiny_models.qwen2_audio(tmp_path_factory.mktemp("qwen2-audio"))


@pytest.fixture(scope="module")
def clap_fused_dir(tmp_path_factory) -> Path:
    return tiny_models.clap_fused(tmp_path_factory.mktemp("clap-fused"))


# -- qwen2-audio -----------------------------------------------------------------------------------

def test_qwen2_audio_reads_the_tower_and_never_the_language_model(no_hub, qwen_dir, monkeypatch):
    import safetensors

    repo = cached_repo("Qwen/Qwen2-Audio-7B", {COMMIT: qwen_dir}, main=COMMIT)
    (repo / "snapshots" / COMMIT / QWEN2_AUDIO_SHARDS[2]).unlink()  # LM only: never downloaded, never needed
    opened, read = [], []
    real_open = safetensors.safe_open

    class Recording:
        def __init__(self, path, framework, **kwargs):
            opened.append(Path(path).name)
            self.inner = real_open(path, framework=framework, **kwargs)

        def __enter__(self):
            self.handle = self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def get_tensor(self, key):
            read.append(key)
            return self.handle.get_tensor(key)

    monkeypatch.setattr(safetensors, "safe_open", Recording)
    backbone = registry.load("qwen2-audio", "all", "cpu", "fp32", None)
    assert sorted(set(opened)) == sorted(QWEN2_AUDIO_SHARDS[:2])
    assert read and not [key for key in read if key.startswith("language_model")]
    assert (backbone.layers, backbone.dim, backbone.sample_rate, backbone.max_seconds) == (("0", "1", "2"), 16,
                                                                                         16000, 30)
    clips = [noise(1.0, 16000, 1), noise(2.5, 16000, 2)]
    out = backbone.embed(clips)
    assert all(v.shape == (2, 16) and np.isfinite(v).all() for v in out.values())
    np.testing.assert_allclose(backbone.embed([clips[0]])["2"][0], out["2"][0], atol=1e-5)  # batch-mates
    prov = backbone.provenance()
    assert (prov.model_id, prov.revision, prov.options["language_model"]) == ("Qwen/Qwen2-Audio-7B", COMMIT,
                                                                              "not loaded")
    with pytest.raises(ValueError, match="at most 30 s"):
        backbone.embed([noise(31.0, 16000)])
    with pytest.raises(ValueError, match="layers=2,projector: 2 is 16-d but projector is 24-d"):
        registry.load("qwen2-audio", "2,projector", "cpu", "fp32", None)


def test_qwen2_audio_matches_the_full_model_path(qwen_dir):
    """`last` and `projector` equal what Qwen2AudioForConditionalGeneration computes for an audio clip:
    the projector's output on the tower's valid frames (the full model loaded from the same files)."""
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    clip = noise(2.0, 16000, 3)
    ours = {layer: registry.load(f"qwen2-audio:{qwen_dir}", layer, "cpu", "fp32", None).embed([clip])[layer][0]
            for layer in ("last", "projector")}
    full = Qwen2AudioForConditionalGeneration.from_pretrained(qwen_dir, attn_implementation="eager").eval()
    extractor = WhisperFeatureExtractor.from_pretrained(qwen_dir)
    inputs = extractor([clip], sampling_rate=16000, return_attention_mask=True, padding="max_length",
                       return_tensors="pt")
    _, tokens = full.model.audio_tower._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
    captured = {}
    full.model.multi_modal_projector.register_forward_hook(
        lambda _m, args, output: captured.update(tower=args[0], projector=output))
    ids = torch.tensor([[1] + [full.config.audio_token_id] * int(tokens[0]) + [2]])
    with torch.no_grad():
        full(input_ids=ids, input_features=inputs["input_features"],
             feature_attention_mask=inputs["attention_mask"], attention_mask=torch.ones_like(ids))
    n = int(tokens[0])
    np.testing.assert_allclose(ours["last"], captured["tower"][0, :n].mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(ours["projector"], captured["projector"][0, :n].mean(0).numpy(), atol=1e-5)


def test_qwen2_audio_refuses_a_checkpoint_without_its_tower(qwen_dir, tmp_path):
    broken = Path(shutil.copytree(qwen_dir, tmp_path / "broken"))
    (broken / QWEN2_AUDIO_SHARDS[0]).unlink()
    with pytest.raises(BackboneUnavailable, match=f"shard {QWEN2_AUDIO_SHARDS[0]} .* is not in"):
        registry.load(f"qwen2-audio:{broken}", "", "cpu", "fp32", None)


def test_qwen2_audio_offline_and_not_cached_is_one_line(no_hub):
    with pytest.raises(BackboneUnavailable) as err:
        registry.load("qwen2-audio-instruct", "", "cpu", "fp32", None)
    assert "\n" not in str(err.value) and "'Qwen/Qwen2-Audio-7B-Instruct'" in str(err.value)


# -- clap-fused ------------------------------------------------------------------------------------

def test_clap_fused_takes_long_clips_whole(no_hub, clap_fused_dir):
    from transformers import ClapFeatureExtractor, ClapModel

    cached_repo("laion/clap-htsat-fused", {COMMIT: clap_fused_dir}, main=COMMIT)
    backbone = registry.load("clap-fused", "", "cpu", "fp32", None)
    assert backbone.fusion and (backbone.layers, backbone.dim, backbone.sample_rate) == (("projected",), 12, 48000)
    short, long = noise(2.0, 48000, 4), noise(25.0, 48000, 5)
    out = backbone.embed([short, long])["projected"]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(backbone.embed([long])["projected"][0], out[1], atol=1e-6)  # deterministic, alone

    # what ClapModel.get_audio_features gives for the fusion input, with is_longer true for the long clip only
    full = ClapModel.from_pretrained(clap_fused_dir).eval()
    extractor = ClapFeatureExtractor.from_pretrained(clap_fused_dir)
    np.random.seed(0)
    fused = extractor([long], sampling_rate=48000, return_tensors="pt", truncation="fusion")
    assert fused["input_features"].shape[1] == 4  # whole-clip mel squeezed + three crops
    with torch.no_grad():
        expected = full.get_audio_features(input_features=fused["input_features"], is_longer=torch.tensor([[True]]))
    expected = getattr(expected, "pooler_output", expected)[0].numpy()
    np.testing.assert_allclose(out[1], expected, atol=1e-5)
    # the fusion path sees the whole clip: not the same as its first 10 s alone
    first_window = backbone.embed([long[:10 * 48000]])["projected"][0]
    assert not np.allclose(first_window, out[1], atol=1e-3)
    prov = backbone.provenance()
    assert (prov.model_id, prov.revision) == ("laion/clap-htsat-fused", COMMIT)
    assert "numpy seed 0" in prov.pooling and prov.options["padding"] == "fusion input per clip"
