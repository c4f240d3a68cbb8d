"""`hf:` backbones on tiny randomly initialised models saved with `save_pretrained`.

Every model goes through `load_hf("hf:<dir>")`, the same path a hub id takes after download.
The hub itself is never reached: the offline tests point huggingface_hub at a closed port.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from transformers import (ClapFeatureExtractor, ClapModel, HubertConfig, HubertModel, Wav2Vec2FeatureExtractor, Wav2Vec2Model)

from embed.hf import ALIASES, BackboneUnavailable, RemoteCodeRefused, load_hf, window_starts

from tiny_models import TINY_ENCODER, cached_repo, noise, save  # noqa: F401  (used by tests below)


# -- encoders -------------------------------------------------------------------------------

# transformers 5 gives a stable-layer-norm encoder's hidden_states[-1] before its final layer norm,
# so there `last` (after it) and the top layer differ; elsewhere they are one tensor.
@pytest.mark.parametrize("which, rate, top_is_last", [("wav2vec2_dir", 16000, False), ("hubert_dir", 24000, True)])
def test_encoder_dims_and_layers(request, which, rate, top_is_last):
    path = request.getfixturevalue(which)
    backbone = load_hf(f"hf:{path}")
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("last",), 32, rate)
    clips = [noise(0.5, rate, 1), noise(0.3, rate, 2)]
    out = backbone.embed(clips)
    assert set(out) == {"last"} and out["last"].shape == (2, 32) and out["last"].dtype == np.float32
    assert np.isfinite(out["last"]).all()

    every = load_hf(str(path), layers="all")  # a bare dir works too
    assert every.layers == ("0", "1", "2")
    vectors = every.embed(clips)
    assert all(v.shape == (2, 32) for v in vectors.values())
    assert np.allclose(vectors["2"], out["last"], atol=1e-5) == top_is_last
    assert not np.allclose(vectors["0"], vectors["2"])
    assert load_hf(f"hf:{path}", layers="1").layers == ("1",)
    with pytest.raises(ValueError, match="no layer '7'"):
        load_hf(f"hf:{path}", layers="7")


@pytest.mark.parametrize("which", ["wav2vec2_dir", "hubert_dir"])
def test_hooked_hidden_states_match_native_ones(request, which):
    """The hooks used when a model's forward drops hidden states give what transformers gives."""
    path = request.getfixturevalue(which)
    clips = [noise(0.5, 24000, 21), noise(0.7, 24000, 22)]
    native = load_hf(f"hf:{path}", layers="all")
    hooked = load_hf(f"hf:{path}", layers="all")
    hooked._native_hidden = False
    expected, got = native.embed(clips), hooked.embed(clips)
    assert native._native_hidden is True and hooked._native_hidden is False
    for layer in native.layers:
        np.testing.assert_allclose(got[layer], expected[layer], atol=1e-6)


def test_padding_is_masked(wav2vec2_dir):
    backbone = load_hf(f"hf:{wav2vec2_dir}")
    assert backbone.masked
    short, long = noise(0.4, 16000, 3), noise(1.0, 16000, 4)
    alone = backbone.embed([short])["last"][0]
    batched = backbone.embed([long, short])["last"]
    np.testing.assert_allclose(batched[1], alone, atol=1e-4)
    np.testing.assert_allclose(batched[0], backbone.embed([long])["last"][0], atol=1e-4)


def test_group_norm_encoder_runs_equal_length_sub_batches(hubert_dir):
    backbone = load_hf(f"hf:{hubert_dir}")
    assert not backbone.masked  # padding would leak into the group norm's statistics
    short, long = noise(0.4, 24000, 5), noise(1.0, 24000, 6)
    batched = backbone.embed([short, long, short])["last"]
    np.testing.assert_allclose(batched[0], backbone.embed([short])["last"][0], atol=1e-6)
    np.testing.assert_allclose(batched[0], batched[2], atol=1e-6)
    assert backbone.provenance().options["padding"] == "equal-length sub-batches"


def test_checkpoint_missing_weights_is_refused(wav2vec2_dir, tmp_path):
    import json
    import shutil

    broken = Path(shutil.copytree(wav2vec2_dir, tmp_path / "broken"))
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(BackboneUnavailable, match="partly random"):
        load_hf(f"hf:{broken}")


def test_too_short_clip_is_nan_not_an_error(wav2vec2_dir):
    out = load_hf(f"hf:{wav2vec2_dir}").embed([noise(0.5, 16000), np.zeros(5, np.float32), np.zeros(0, np.float32)])
    assert np.isfinite(out["last"][0]).all() and np.isnan(out["last"][1:]).all()


@pytest.mark.parametrize("which, cls", [("wav2vec2_dir", Wav2Vec2Model), ("hubert_dir", HubertModel)])
def test_weight_norm_baked_under_inference_mode(request, which, cls):
    path = request.getfixturevalue(which)
    reference = cls.from_pretrained(path).eval()
    assert torch.nn.utils.parametrize.is_parametrized(reference.encoder.pos_conv_embed.conv)
    backbone = load_hf(f"hf:{path}")
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in backbone.module.modules())
    x = torch.from_numpy(np.stack([noise(0.5, backbone.sample_rate, 7), noise(0.5, backbone.sample_rate, 8)]))
    with torch.no_grad():
        expected = reference(x).last_hidden_state
    with torch.inference_mode():
        got = backbone.module(x).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


# -- whisper --------------------------------------------------------------------------------

def test_whisper_encoder_only(whisper_dir, monkeypatch):
    backbone = load_hf(f"hf:{whisper_dir}", layers="all")
    assert isinstance(backbone.module, transformers.models.whisper.modeling_whisper.WhisperEncoder)
    assert not any("decoder" in name for name, _ in backbone.module.named_modules())
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("0", "1", "2"), 32, 16000)
    assert backbone.max_seconds == 30

    def refuse(*args, **kwargs):
        raise AssertionError("the decoder ran")

    monkeypatch.setattr(transformers.models.whisper.modeling_whisper.WhisperDecoder, "forward", refuse)
    short, long = noise(1.0, 16000, 9), noise(3.0, 16000, 10)
    out = backbone.embed([short, long])
    assert all(v.shape == (2, 32) and np.isfinite(v).all() for v in out.values())
    np.testing.assert_allclose(out["2"][0], backbone.embed([short])["2"][0], atol=1e-5)
    last = load_hf(f"hf:{whisper_dir}").embed([short])["last"][0]  # after the encoder's final layer norm
    np.testing.assert_allclose(last, out["2"][0], atol=1e-5)
    with pytest.raises(ValueError, match="at most 30 s"):
        backbone.embed([noise(31.0, 16000)])


# -- clap -----------------------------------------------------------------------------------

def test_clap_projected_audio_embedding(clap_dir):
    backbone = load_hf(f"hf:{clap_dir}")
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("projected",), 12, 48000)
    clip = noise(2.0, 48000, 11)
    vector = backbone.embed([clip])["projected"][0]
    assert abs(np.linalg.norm(vector) - 1) < 1e-5  # L2-normalised, like get_audio_features

    full = ClapModel.from_pretrained(clap_dir).eval()
    inputs = ClapFeatureExtractor.from_pretrained(clap_dir)([clip], sampling_rate=48000, return_tensors="pt")
    with torch.inference_mode():
        expected = full.get_audio_features(**inputs)
    expected = getattr(expected, "pooler_output", expected)[0].numpy()  # transformers 5 returns an output object
    np.testing.assert_allclose(vector, expected, atol=1e-5)

    long = noise(25.0, 48000, 12)  # > 10 s: three evenly spaced windows, no random crop
    first, second = backbone.embed([long, clip]), backbone.embed([long])
    np.testing.assert_allclose(first["projected"][0], second["projected"][0], atol=1e-6)
    assert abs(np.linalg.norm(first["projected"][0]) - 1) < 1e-5
    assert window_starts(25 * 48000, 10 * 48000) == [0, 15 * 24000, 15 * 48000]

    assert load_hf(f"hf:{clap_dir}", layers="pooled").dim == 16
    with pytest.raises(ValueError, match="FLOAT\\[dim\\]"):
        load_hf(f"hf:{clap_dir}", layers="projected,pooled")
    assert "normalised" in backbone.provenance().pooling


# -- identity, trust, offline ---------------------------------------------------------------

def test_provenance(wav2vec2_dir):
    first, again = load_hf(f"hf:{wav2vec2_dir}"), load_hf(f"hf:{wav2vec2_dir}", name="tiny")
    prov = first.provenance()
    digest = hashlib.sha256()
    for weights in sorted(wav2vec2_dir.glob("*.safetensors")) + sorted(wav2vec2_dir.glob("*.bin")):
        digest.update(weights.read_bytes())
    assert prov.revision == "sha256:" + digest.hexdigest() == again.provenance().revision
    assert prov.model_id == str(wav2vec2_dir.resolve())
    assert (prov.sample_rate, prov.dim, prov.layers) == (16000, 32, ("last",))
    assert prov.pooling == "mean over valid frames"
    assert prov.options == {"kind": "encoder", "precision": "fp32", "padding": "attention mask",
                            "trust_remote_code": "false", "remote_code": "false"}
    assert {"transformers", "torch", "numpy"} <= set(prov.packages)
    assert (first.name, again.name) == (wav2vec2_dir.name, "tiny")


REMOTE_CONFIG = '''
from transformers import HubertConfig

class TinyRemoteConfig(HubertConfig):
    model_type = "tiny_remote_encoder"
'''
REMOTE_MODEL = '''
from transformers import HubertModel
from transformers.modeling_outputs import BaseModelOutput
from .configuration_tiny import TinyRemoteConfig

class TinyRemoteModel(HubertModel):
    """Like MERT's code: its own forward, which drops hidden states under transformers 5."""
    config_class = TinyRemoteConfig

    def forward(self, input_values, attention_mask=None, output_hidden_states=None, **kwargs):
        features = self.feature_extractor(input_values).transpose(1, 2)
        if attention_mask is not None:
            attention_mask = self._get_feature_vector_attention_mask(features.shape[1], attention_mask)
        hidden = self.feature_projection(features)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        encoded = self.encoder(hidden, attention_mask=attention_mask)
        return BaseModelOutput(last_hidden_state=encoded[0], hidden_states=None)
'''


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("remote")
    (path / "configuration_tiny.py").write_text(REMOTE_CONFIG)
    (path / "modeling_tiny.py").write_text(REMOTE_MODEL)
    torch.manual_seed(4)
    config = HubertConfig(**TINY_ENCODER, feat_extract_norm="layer")
    model = HubertModel(config)
    save(model, Wav2Vec2FeatureExtractor(sampling_rate=24000, return_attention_mask=True), path)
    import json

    raw = json.loads((path / "config.json").read_text())
    raw.update(model_type="tiny_remote_encoder", architectures=["TinyRemoteModel"],
               auto_map={"AutoConfig": "configuration_tiny.TinyRemoteConfig",
                         "AutoModel": "modeling_tiny.TinyRemoteModel"})
    (path / "config.json").write_text(json.dumps(raw))
    return path


def test_trust_remote_code_is_opt_in(remote_dir, hubert_dir):
    needs_code = {name for name, spec in ALIASES.items() if spec.trust_remote_code}
    assert needs_code == {"mert-v1-95m", "mert-v1-330m", "culturemert-95m"}
    assert load_hf(f"hf:{hubert_dir}").provenance().options["trust_remote_code"] == "false"
    with pytest.raises(RemoteCodeRefused, match="trust_remote_code=true") as refused:
        load_hf(f"hf:{remote_dir}")
    assert "\n" not in str(refused.value)

    backbone = load_hf(f"hf:{remote_dir}", layers="all", trust_remote_code=True)
    out = backbone.embed([noise(0.5, 24000, 13), noise(0.3, 24000, 14)])
    assert backbone._native_hidden is False  # the model returned no hidden states: they were tapped by hooks
    assert backbone.layers == ("0", "1", "2") and backbone.max_seconds is None
    assert all(np.isfinite(v).all() for v in out.values())
    last = load_hf(f"hf:{remote_dir}", trust_remote_code=True).embed([noise(0.5, 24000, 13)])["last"][0]
    np.testing.assert_allclose(out["2"][0], last, atol=1e-5)
    assert backbone.provenance().options["remote_code"] == "true"


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """A hub that refuses connections at once, and an empty cache."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


def test_offline_alias_fails_in_one_line_quickly(no_hub):
    started = time.perf_counter()
    with pytest.raises(BackboneUnavailable) as err:
        load_hf("mert-v1-95m")
    assert time.perf_counter() - started < 10
    message = str(err.value)
    assert "\n" not in message and "'m-a-p/MERT-v1-95M'" in message and "hf:" in message
    assert isinstance(err.value, RuntimeError)


def test_offline_mode_and_bad_ids(no_hub, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackboneUnavailable, match="offline"):
        load_hf("hf:someone/some-model")
    with pytest.raises(BackboneUnavailable, match="no such local directory"):
        load_hf("hf:/no/such/model/dir")


def test_bf16_on_cpu_stays_close(wav2vec2_dir):
    clips = [noise(0.5, 16000, 15), noise(0.8, 16000, 16)]
    fp32 = load_hf(f"hf:{wav2vec2_dir}", layers="all").embed(clips)
    bf16_backbone = load_hf(f"hf:{wav2vec2_dir}", layers="all", precision="bf16")
    bf16 = bf16_backbone.embed(clips)
    for layer, vectors in fp32.items():
        cos = (vectors * bf16[layer]).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(bf16[layer], axis=1)
        assert (cos > 0.99).all(), (layer, cos)
    assert bf16_backbone.provenance().options["precision"] == "bf16"
    assert load_hf(f"hf:{wav2vec2_dir}", device="auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bf16_whisper_inside_the_engines_autocast(whisper_dir):
    """The engine wraps embed() in autocast; the feature extractor must still run in fp32."""
    clips = [noise(1.0, 16000, 17), noise(2.0, 16000, 18)]
    fp32 = load_hf(f"hf:{whisper_dir}").embed(clips)["last"]
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = load_hf(f"hf:{whisper_dir}", precision="bf16").embed(clips)["last"]
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert (cos > 0.99).all(), cos


# -- revisions: remote code runs only at a pinned commit -------------------------------------

def test_remote_code_aliases_without_a_verified_pin_need_a_commit(no_hub):
    assert {name for name, spec in ALIASES.items() if spec.trust_remote_code and not spec.revision} == {
        "mert-v1-330m", "culturemert-95m"}
    for alias in ("mert-v1-330m", "culturemert-95m"):
        started = time.perf_counter()
        with pytest.raises(RemoteCodeRefused, match="pass revision=<the 40-character commit you read>") as refused:
            load_hf(alias)
        assert time.perf_counter() - started < 1, "refused before the hub is asked anything"
        assert "\n" not in str(refused.value) and ALIASES[alias].hub_id in str(refused.value)
    with pytest.raises(RemoteCodeRefused, match="revision=main is not a commit"):
        load_hf("mert-v1-330m", revision="main")
    with pytest.raises(RemoteCodeRefused, match="no reviewed commit"):
        load_hf("culturemert-95m", trust_remote_code=True)


def test_an_alias_runs_its_repository_code_at_its_pinned_commit_not_at_main(no_hub, remote_dir, hubert_dir):
    import re

    pin = ALIASES["mert-v1-95m"].revision
    assert re.fullmatch(r"[0-9a-f]{40}", pin)
    moved = "f" * 40  # what main points at now: other files
    cached_repo("m-a-p/MERT-v1-95M", {pin: remote_dir, moved: hubert_dir}, main=moved)
    backbone = load_hf("mert-v1-95m", layers="all")
    prov = backbone.provenance()
    assert prov.revision == pin and prov.options["remote_code"] == "true"
    assert backbone.layers == ("0", "1", "2") and backbone._native_hidden is None


def test_revision_is_passed_to_every_load_of_a_hub_model(no_hub, wav2vec2_dir, hubert_dir):
    first, second = "a" * 40, "b" * 40
    cached_repo("someone/tiny-encoder", {first: wav2vec2_dir, second: hubert_dir}, main=second)
    at_first = load_hf("hf:someone/tiny-encoder", revision=first)
    assert (at_first.provenance().revision, at_first.sample_rate) == (first, 16000)
    at_main = load_hf("hf:someone/tiny-encoder")
    assert (at_main.provenance().revision, at_main.sample_rate) == (second, 24000)
    with pytest.raises(BackboneUnavailable, match="revision=x: .* is a local directory"):
        load_hf(f"hf:{wav2vec2_dir}", revision="x")


def test_the_pinned_revision_is_part_of_the_settings_and_the_backbones_row(no_hub, remote_dir, tmp_path):
    from conftest import write_clip
    from embed import engine, store
    from embed.engine import EmbedConfig
    from ingest.api import ingest

    pin = ALIASES["mert-v1-95m"].revision
    cached_repo("m-a-p/MERT-v1-95M", {pin: remote_dir}, main=pin)
    for i in range(2):
        write_clip(tmp_path / "in" / f"c{i}.wav", seconds=0.5, seed=i)
    ingest("tiny", source="folder", path=tmp_path / "in", workers=1)
    cfg = EmbedConfig(dataset="tiny", backbone="mert-v1-95m", loader_workers=0)
    assert cfg.revision == pin and cfg.settings()["revision"] == pin
    assert engine.run(cfg).embedded == 2
    row = store.read_backbone("mert-v1-95m")
    assert row["revision"] == pin and json.loads(row["settings"])["revision"] == pin
    with pytest.raises(ValueError, match="revision=abc: logmel loads no hub checkpoint"):
        EmbedConfig(dataset="tiny", backbone="logmel", revision="abc")
    assert "revision" not in EmbedConfig(dataset="tiny", backbone="logmel").settings()
