"""Tiny randomly initialised transformers audio encoders, saved like hub checkpoints.

Each builder writes model + feature extractor with `save_pretrained` into a directory, so
tests load them through `hf:<dir>`, the same code path a downloaded hub model takes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, WhisperFeatureExtractor

# the hf encoders live in the package (the demo's LoRA line builds one); re-exported for the tests
from embed.tiny_models import TINY_ENCODER, hubert, save, wav2vec2, whisper  # noqa: F401


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def clap(path: Path) -> Path:
    torch.manual_seed(3)
    audio = dict(spec_size=256, window_size=8, depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
                 hidden_size=16, num_mel_bins=64)
    text = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20, vocab_size=100,
                max_position_embeddings=40)
    config = ClapConfig(audio_config=audio, text_config=text, projection_dim=12)
    return save(ClapModel(config), ClapFeatureExtractor(truncation="rand_trunc"), path)


# -- MuQ and MuQ-MuLan (the `muq` package), saved in their hub layout: config.json + model.safetensors

def muq(path: Path) -> Path:
    """A tiny MuQ from the package's own MuQConfig/MuQ, saved by its PyTorchModelHubMixin like the hub
    repo OpenMuQ/MuQ-large-msd-iter (config.json + model.safetensors)."""
    from transformers import Wav2Vec2ConformerConfig

    from embed.extras import import_muq

    package = import_muq()
    torch.manual_seed(5)
    conformer = Wav2Vec2ConformerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=37, conv_depthwise_kernel_size=3,
                                        position_embeddings_type="rotary").to_dict()
    conformer = {k: v for k, v in conformer.items() if k not in ("id2label", "label2id")}  # as MuQ's W2v2Config
    config = package.MuQConfig(label_rate=25, codebook_dim=4, codebook_size=16, conv_dim=8, encoder_dim=32,
                               encoder_depth=2, w2v2_config=conformer,
                               stat={"melspec_2048_cnt": 1, "melspec_2048_mean": 6.768, "melspec_2048_std": 18.418})
    from embed.muq_backbone import _transformers5_shims

    _transformers5_shims(package)
    package.MuQ(config).save_pretrained(path)
    return path


def xlm_roberta(path: Path) -> Path:
    """A tiny XLM-R encoder and tokenizer (MuQ-MuLan's text tower is xlm-roberta-base)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    torch.manual_seed(6)
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0)]
    pieces += [(f"\u2581{w}", -1.0) for w in ("sad", "happy", "piano", "guitar", "song", "a", "slow", "fast")]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    tokenizer = XLMRobertaTokenizer(vocab=pieces)
    config = XLMRobertaConfig(vocab_size=len(pieces), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=20, max_position_embeddings=40, pad_token_id=1)
    XLMRobertaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def muq_mulan(path: Path, muq_dir: Path, text_dir: Path) -> Path:
    """A tiny MuQ-MuLan whose config names its towers like the hub one does (here: local folders whose
    names carry `muq` and `xlm-roberta`, which MuQ-MuLan's code looks for)."""
    from embed.extras import import_muq

    package = import_muq()
    torch.manual_seed(7)
    config = {"mulan": {"sr": 24000, "clip_secs": 2, "dim_latent": 8, "decoupled_contrastive_learning": True,
                        "hierarchical_contrastive_loss": False, "hierarchical_contrastive_loss_layers": None,
                        "sigmoid_contrastive_loss": False, "rank_contrast": True},
              "audio_model": {"name": str(muq_dir), "model_dim": 32, "use_layer_idx": -1},
              "text_model": {"name": str(text_dir), "model_dim": 16},
              "audio_transformer": {"dim": 12, "tf_depth": 1, "heads": 2, "dim_head": 6},
              "text_transformer": {"dim": 12, "tf_depth": 1, "heads": 2, "dim_head": 6}}
    package.MuQMuLan(config).save_pretrained(path, config=config)
    return path


# -- the hub, as a checkpoint loaded by its registered name sees it --------------------------------

def cached_repo(hub_id: str, snapshots: dict[str, Path], main: str) -> Path:
    """A Hugging Face cache entry as `hf download` leaves it: one folder per commit, refs/main."""
    import shutil

    import huggingface_hub.constants as constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}"
    for commit, source in snapshots.items():
        shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(main)
    return repo


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """A hub that refuses connections at once, and an empty cache (import it into a test module)."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


# -- speaker encoders ------------------------------------------------------------------------------

ECAPA_YAML = """\
# A tiny ECAPA-TDNN in the layout of speechbrain/spkrec-ecapa-voxceleb's hyperparams.yaml
n_mels: 20
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 4

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 8
    lin_neurons: 12

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 12
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


def ecapa(path: Path) -> Path:
    """A tiny SpeechBrain ECAPA-TDNN built by speechbrain from a hyperparams.yaml shaped like the hub one,
    each loadable saved by speechbrain's own checkpoint savers into the hub's file names."""
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS, get_default_hook

    torch.manual_seed(8)
    path.mkdir(parents=True, exist_ok=True)
    (path / "hyperparams.yaml").write_text(ECAPA_YAML)
    hparams = load_hyperpyyaml(ECAPA_YAML)
    hparams["label_encoder"].update_from_iterable([f"spk{i}" for i in range(4)])
    with torch.no_grad():
        hparams["mean_var_norm_emb"].glob_mean = torch.randn(12) * 0.1
    for name, file in (("embedding_model", "embedding_model.ckpt"), ("mean_var_norm_emb", "mean_var_norm_emb.ckpt"),
                       ("classifier", "classifier.ckpt"), ("label_encoder", "label_encoder.txt")):
        obj = hparams[name]
        get_default_hook(obj, DEFAULT_SAVE_HOOKS)(obj, path / file)
    return path


def campplus(path: Path, embedding_size: int = 24) -> Path:
    """A narrow randomly initialised CAM++ (the published layout and key names, smaller widths), saved like
    campplus_cn_common.bin: torch.save of the state dict."""
    from embed.campplus import CAMPPlus

    torch.manual_seed(9)
    network = CAMPPlus(feat_dim=80, embedding_size=embedding_size, growth_rate=4, bn_size=2, init_channels=16,
                       m_channels=4)
    for module in network.modules():  # running statistics other than identity, as trained ones are
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), path / "campplus_cn_common.bin")
    return path


# -- Qwen2-Audio: a sharded checkpoint whose language model must never be read ---------------------

QWEN2_AUDIO_SHARDS = ("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                      "model-00003-of-00003.safetensors")


def qwen2_audio(path: Path) -> Path:
    """A tiny Qwen2AudioForConditionalGeneration saved like Qwen/Qwen2-Audio-7B: transformers-4 key names
    (audio_tower.*, multi_modal_projector.*, language_model.*), three shards and their index. Shard 1
    holds the audio tower beside the LM's token embeddings, shard 2 the projector beside LM layers,
    shard 3 only LM weights: a loader of the tower alone never needs shard 3."""
    import json

    from safetensors.torch import save_file
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    torch.manual_seed(10)
    config = Qwen2AudioConfig(
        audio_config=dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=20,
                          num_mel_bins=128, max_source_positions=1500),
        text_config=dict(model_type="qwen2", hidden_size=24, intermediate_size=30, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, vocab_size=64, max_position_embeddings=64),
        audio_token_id=5)  # inside the tiny vocabulary
    model = Qwen2AudioForConditionalGeneration(config)
    published = {}
    for key, tensor in model.state_dict().items():
        for new, old in (("model.audio_tower.", "audio_tower."), ("model.multi_modal_projector.", "multi_modal_projector."),
                         ("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head.")):
            if key.startswith(new):
                published[old + key[len(new):]] = tensor.contiguous().clone()
                break
        else:
            raise AssertionError(f"unexpected key {key}")
    shard_of = {}
    for key in published:
        if key.startswith("audio_tower.") or key == "language_model.model.embed_tokens.weight":
            shard_of[key] = QWEN2_AUDIO_SHARDS[0]
        elif key.startswith("multi_modal_projector.") or key.startswith("language_model.model.layers.0."):
            shard_of[key] = QWEN2_AUDIO_SHARDS[1]
        else:
            shard_of[key] = QWEN2_AUDIO_SHARDS[2]
    path.mkdir(parents=True, exist_ok=True)
    for shard in QWEN2_AUDIO_SHARDS:
        save_file({k: v for k, v in published.items() if shard_of[k] == shard}, str(path / shard),
                  metadata={"format": "pt"})
    total = sum(v.numel() * v.element_size() for v in published.values())
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": dict(sorted(shard_of.items()))}, indent=2))
    config.save_pretrained(path)
    WhisperFeatureExtractor(feature_size=128).save_pretrained(path)
    return path


def clap_fused(path: Path) -> Path:
    """A tiny fused CLAP (audio_config.enable_fusion, the extractor's truncation="fusion"), laid out like
    laion/clap-htsat-fused."""
    torch.manual_seed(11)
    audio = dict(spec_size=256, window_size=8, depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
                 hidden_size=16, num_mel_bins=64, enable_fusion=True, fusion_type="aff_2d")
    text = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20, vocab_size=100,
                max_position_embeddings=40)
    config = ClapConfig(audio_config=audio, text_config=text, projection_dim=12)
    return save(ClapModel(config), ClapFeatureExtractor(truncation="fusion", padding="repeatpad"), path)
