"""Tiny randomly initialised transformers audio encoders, saved like hub checkpoints.

Each builder writes model + feature extractor with `save_pretrained` into a directory, so
tests load them through `hf:<dir>`, the same code path a downloaded hub model takes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (ClapConfig, ClapFeatureExtractor, ClapModel, HubertConfig, HubertModel, Wav2Vec2Config,
                          Wav2Vec2FeatureExtractor, Wav2Vec2Model, WhisperConfig, WhisperFeatureExtractor,
                          WhisperModel)

TINY_ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                    conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                    num_conv_pos_embedding_groups=2)


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def save(model, extractor, path: Path) -> Path:
    torch.manual_seed(0)
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return path


def wav2vec2(path: Path) -> Path:
    """Layer-norm feature encoder: takes an attention mask, so batches are padded and masked."""
    torch.manual_seed(0)
    config = Wav2Vec2Config(**TINY_ENCODER, feat_extract_norm="layer", do_stable_layer_norm=True)
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True, do_normalize=True)
    return save(Wav2Vec2Model(config), extractor, path)


def hubert(path: Path) -> Path:
    """MERT-like: 24 kHz, group-norm feature encoder (no usable mask), so equal-length sub-batches."""
    torch.manual_seed(1)
    config = HubertConfig(**TINY_ENCODER, feat_extract_norm="group")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=24000, return_attention_mask=True, do_normalize=False)
    return save(HubertModel(config), extractor, path)


def whisper(path: Path) -> Path:
    torch.manual_seed(2)
    config = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=80,
                           max_source_positions=1500, max_target_positions=32, vocab_size=100, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, decoder_start_token_id=0)
    return save(WhisperModel(config), WhisperFeatureExtractor(feature_size=80), path)


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
