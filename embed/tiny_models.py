"""Tiny randomly initialised transformers encoders saved in the published layout
(`save_pretrained`: config.json, model.safetensors, preprocessor_config.json), for the demo's
LoRA line and the tests: the real loading code runs on them, offline, in seconds.

    hubert(folder)     # MERT-like: 24 kHz, group-norm feature encoder, 2 blocks × 32-d
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import (HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model,
                          WhisperConfig, WhisperFeatureExtractor, WhisperModel)

TINY_ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                    conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                    num_conv_pos_embedding_groups=2)


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
