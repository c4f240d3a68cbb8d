"""PyTorch port of musicnn (Pons & Serra 2019), ``build_musicnn`` from musicnn/models.py.

Layout notes: TF runs NHWC with H = time (187 frames) and W = mel bins (96). Here the
front end runs NCHW (B, 1, time, mel); the mid-end convs, whose kernels span the whole
feature axis, become Conv1d over time with the features as channels. Each TF layer is
``conv -> ReLU -> batch norm`` (the activation lives inside ``tf.layers.conv2d``, the
norm comes after it), and tf.layers batch norm uses eps=1e-3, not PyTorch's 1e-5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TF_BN_EPS = 1e-3
N_MELS = 96


def _bn(channels: int) -> nn.BatchNorm1d:
    # TF momentum 0.99 (weight of the old moving average) is PyTorch momentum 0.01
    return nn.BatchNorm1d(channels, eps=TF_BN_EPS, momentum=0.01)


def _bn_any(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Apply ``bn`` over dim 1 of a tensor of any rank (BatchNorm1d accepts only 2-D/3-D)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.training, bn.momentum, bn.eps)


class _FrontBlock(nn.Module):
    """conv -> ReLU -> BN -> max over the whole mel axis; returns (B, filters, time)."""

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = _bn(filters)
        self.time_pad = time_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.time_pad))  # zeros, padded after the input batch norm as in TF
        x = _bn_any(self.bn, F.relu(self.conv(x)))
        return x.amax(dim=3)


def _same_pad(kernel: int) -> tuple[int, int]:
    """TF ``padding='same'`` for stride 1: the extra zero of an even kernel goes *after*."""
    total = kernel - 1
    return total // 2, total - total // 2


class Musicnn(nn.Module):
    """musicnn tagger: mel patches (B, 187, 96) -> logits, penultimate, mean/max pool.

    ``filters_frontend`` (1.6), ``filters_midend`` (64) and ``units_backend`` (200) match
    the released MTT_musicnn / MSD_musicnn checkpoints.
    """

    def __init__(self, num_classes: int = 50, filters_frontend: float = 1.6, filters_midend: int = 64, units_backend: int = 200):
        super().__init__()
        timbral, temporal = int(filters_frontend * 128), int(filters_frontend * 32)
        self.input_bn = _bn(1)
        self.front = nn.ModuleList(
            [
                _FrontBlock(timbral, (7, int(0.4 * N_MELS)), (3, 3)),
                _FrontBlock(timbral, (7, int(0.7 * N_MELS)), (3, 3)),
                _FrontBlock(temporal, (128, 1), _same_pad(128)),
                _FrontBlock(temporal, (64, 1), _same_pad(64)),
                _FrontBlock(temporal, (32, 1), _same_pad(32)),
            ]
        )
        front_channels = 2 * timbral + 3 * temporal
        self.mid_convs = nn.ModuleList(
            [nn.Conv1d(c, filters_midend, 7, padding=3) for c in (front_channels, filters_midend, filters_midend)]
        )
        self.mid_bns = nn.ModuleList([_bn(filters_midend) for _ in range(3)])
        pooled = front_channels + 3 * filters_midend
        self.pool_bn = _bn(2 * pooled)
        self.dense = nn.Linear(2 * pooled, units_backend)
        self.dense_bn = _bn(units_backend)
        self.logits = nn.Linear(units_backend, num_classes)

    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        x = _bn_any(self.input_bn, patches.unsqueeze(1))  # (B, 1, time, mel)
        front = torch.cat([block(x) for block in self.front], dim=1)  # (B, 561, time)

        features = [front]
        h = front
        for i, (conv, bn) in enumerate(zip(self.mid_convs, self.mid_bns)):
            out = bn(F.relu(conv(h)))
            h = out if i == 0 else out + h  # layers 2 and 3 are residual
            features.append(h)
        mid = torch.cat(features, dim=1)  # (B, 753, time)

        max_pool = mid.amax(dim=2)
        mean_pool = mid.mean(dim=2)
        # TF concatenates (B, 753, 1) max and mean on the last axis and flattens, so the
        # dense layer sees them interleaved: max_0, mean_0, max_1, mean_1, ...
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return {
            "logits": self.logits(penultimate),
            "penultimate": penultimate,
            "mean_pool": mean_pool,
            "max_pool": max_pool,
        }


def tf_to_torch_state(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map TF variable names/layouts of a musicnn checkpoint onto ``Musicnn.state_dict()``.

    tf.compat.v1.layers names layers of one kind by creation order: the input norm is
    ``batch_normalization``; ``conv2d`` .. ``conv2d_4`` are the front end (timbral 7x38,
    7x67, temporal 128, 64, 32) and ``conv2d_5`` .. ``conv2d_7`` the mid-end, each followed
    by ``batch_normalization_{i+1}``; then ``batch_normalization_9`` (pooled features),
    ``dense`` (penultimate), ``batch_normalization_10`` and ``dense_1`` (logits).
    """
    state: dict[str, torch.Tensor] = {}

    def put(key: str, arr: np.ndarray) -> None:
        state[key] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

    def put_bn(module: str, scope: str) -> None:
        put(f"{module}.weight", weights[f"{scope}/gamma"])
        put(f"{module}.bias", weights[f"{scope}/beta"])
        put(f"{module}.running_mean", weights[f"{scope}/moving_mean"])
        put(f"{module}.running_var", weights[f"{scope}/moving_variance"])
        state[f"{module}.num_batches_tracked"] = torch.tensor(0)

    put_bn("input_bn", "batch_normalization")
    for i in range(8):
        kernel = weights[f"conv2d{'_' + str(i) if i else ''}/kernel"]  # (kh, kw, in, out)
        bias = weights[f"conv2d{'_' + str(i) if i else ''}/bias"]
        if i < 5:
            conv, bn = f"front.{i}.conv", f"front.{i}.bn"
            put(f"{conv}.weight", kernel.transpose(3, 2, 0, 1))  # -> (out, in, kh, kw)
        else:
            conv, bn = f"mid_convs.{i - 5}", f"mid_bns.{i - 5}"
            # kernel spans the whole feature axis (kw) with one input channel: the
            # feature axis becomes Conv1d's input channels
            put(f"{conv}.weight", kernel[:, :, 0, :].transpose(2, 1, 0))  # -> (out, feat, time)
        put(f"{conv}.bias", bias)
        put_bn(bn, f"batch_normalization_{i + 1}")
    put_bn("pool_bn", "batch_normalization_9")
    put("dense.weight", weights["dense/kernel"].T)
    put("dense.bias", weights["dense/bias"])
    put_bn("dense_bn", "batch_normalization_10")
    put("logits.weight", weights["dense_1/kernel"].T)
    put("logits.bias", weights["dense_1/bias"])
    return state
