"""`campplus`: the CAM++ speaker embedding of 3D-Speaker (seed 001 fuses it with MuQ), as a small port.

Why a port: the only maintained loaders of the published checkpoints are 3D-Speaker's `speakerlab`
(not on PyPI; its inference script needs `modelscope`) and `modelscope` itself, a framework of
hundreds of MB for one 7M-parameter network. The network below is CAM++ as defined in
github.com/modelscope/3D-Speaker `speakerlab/models/campplus/DTDNN.py` and `layers.py` (Apache-2.0,
read at commit 09e7806), inference only: the same modules under the same names, so the published
state dicts (`campplus_cn_common.bin` of iic/speech_campplus_sv_zh-cn_16k-common and its Hugging Face
mirror funasr/campplus, 192-d; `campplus_voxceleb.bin`, 512-d) load with no missing or unexpected key
(tests/fixtures/campplus_cn_common_state_dict.tsv lists them, from running 3D-Speaker's code). The
port also reads narrower CAM++s of the same layout (the tests' tiny ones): sizes come from the weights.

Front end as 3D-Speaker's `infer_sv.py`: 16 kHz waveform in [-1, 1] → Kaldi fbank, 80 bins, no dither
(torchaudio.compliance.kaldi, in the [speech] extra) → minus its mean over time → CAM++. Layer
`embedding`: the network's output (192-d, or 512-d for the VoxCeleb model; read from the weights).
`campplus` loads funasr/campplus; `campplus:<dir or hub id>` any folder holding one such state dict.
"""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embed.backbone import Provenance, package_versions, select_layers
from embed.extras import require
from embed.hf_source import BackboneUnavailable, checkpoint_revision, fetch_checkpoint

PRECISIONS = ("fp32",)  # batch-norm statistics and std pooling: bf16 would only lose digits
SAMPLE_RATE = 16000
N_MELS = 80
WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.ckpt", "*.pth")
DEFAULT_MODEL = "funasr/campplus"
DEFAULT_FILE = "campplus_cn_common.bin"  # in funasr/campplus, as in iic/speech_campplus_sv_zh-cn_16k-common


# -- the network (3D-Speaker's CAM++, module names kept: they are the state-dict keys) ------------

def nonlinear(config: str, channels: int) -> nn.Sequential:
    """`batchnorm-relu` → BatchNorm1d then ReLU; `batchnorm_` is a batch norm without affine weights."""
    layers = nn.Sequential()
    for name in config.split("-"):
        if name == "relu":
            layers.add_module("relu", nn.ReLU(inplace=True))
        elif name == "prelu":
            layers.add_module("prelu", nn.PReLU(channels))
        elif name == "batchnorm":
            layers.add_module("batchnorm", nn.BatchNorm1d(channels))
        elif name == "batchnorm_":
            layers.add_module("batchnorm", nn.BatchNorm1d(channels, affine=False))
        else:
            raise ValueError(f"unknown CAM++ nonlinearity {name!r}")
    return layers


class BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """The 2-D convolutional front module: frequency downsampled 8x, channels folded into features."""

    def __init__(self, m_channels: int = 32, feat_dim: int = 80):
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels, 1))
        self.layer2 = nn.Sequential(BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels, 1))
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(out)))))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class TDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, config="batchnorm-relu"):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, bias=False)
        self.nonlinear = nonlinear(config, out_channels)

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Context-aware masking: a local convolution gated by utterance- and 100-frame-segment context."""

    def __init__(self, bn_channels, out_channels, kernel_size, padding, dilation, reduction=2):
        super().__init__()
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                                      bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        local = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + segment_means(x, 100)
        return local * self.sigmoid(self.linear2(self.relu(self.linear1(context))))


def segment_means(x: torch.Tensor, length: int) -> torch.Tensor:
    """Each frame gets the mean of its `length`-frame segment (the last segment may be shorter)."""
    seg = F.avg_pool1d(x, kernel_size=length, stride=length, ceil_mode=True)
    shape = seg.shape
    return seg.unsqueeze(-1).expand(*shape, length).reshape(*shape[:-1], -1)[..., :x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bn_channels, kernel_size, dilation, config="batchnorm-relu"):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.nonlinear1 = nonlinear(config, in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = nonlinear(config, bn_channels)
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation)

    def forward(self, x):
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.ModuleList):
    """Densely connected: each layer's output is concatenated to its input."""

    def __init__(self, num_layers, in_channels, out_channels, bn_channels, kernel_size, dilation):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"tdnnd{i + 1}", CAMDenseTDNNLayer(in_channels + i * out_channels, out_channels,
                                                               bn_channels, kernel_size, dilation))

    def forward(self, x):
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, in_channels, out_channels, config="batchnorm-relu"):
        super().__init__()
        self.nonlinear = nonlinear(config, in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    def __init__(self, in_channels, out_channels, config="batchnorm-relu"):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nonlinear(config, out_channels)

    def forward(self, x):
        x = self.linear(x.unsqueeze(-1)).squeeze(-1) if x.dim() == 2 else self.linear(x)
        return self.nonlinear(x)


class StatsPool(nn.Module):
    def forward(self, x):
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class CAMPPlus(nn.Module):
    def __init__(self, feat_dim: int = 80, embedding_size: int = 192, growth_rate: int = 32, bn_size: int = 4,
                 init_channels: int = 128, m_channels: int = 32):
        super().__init__()
        self.head = FCM(m_channels=m_channels, feat_dim=feat_dim)
        self.xvector = nn.Sequential(OrderedDict(
            tdnn=TDNNLayer(self.head.out_channels, init_channels, 5, stride=2, dilation=1)))
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate(zip((12, 24, 16), (3, 3, 3), (1, 2, 2))):
            self.xvector.add_module(f"block{i + 1}", CAMDenseTDNNBlock(num_layers, channels, growth_rate,
                                                                        bn_size * growth_rate, kernel_size, dilation))
            channels += num_layers * growth_rate
            self.xvector.add_module(f"transit{i + 1}", TransitLayer(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", nonlinear("batchnorm-relu", channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(channels * 2, embedding_size, config="batchnorm_"))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, T, feat_dim] fbank frames → [B, embedding_size]."""
        return self.xvector(self.head(features.permute(0, 2, 1)))


# -- the backbone ----------------------------------------------------------------------------------

def fbank(wave: torch.Tensor) -> torch.Tensor:
    """3D-Speaker's FBank(80, 16000, mean_nor=True): Kaldi fbank without dither, minus its time mean."""
    kaldi = require("torchaudio.compliance.kaldi", "campplus", "speech")
    feats = kaldi.fbank(wave.unsqueeze(0), num_mel_bins=N_MELS, sample_frequency=SAMPLE_RATE, dither=0.0)
    return feats - feats.mean(0, keepdim=True)


def read_state_dict(folder: Path, model: str) -> tuple[Path, dict[str, torch.Tensor]]:
    files = sorted(p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file())
    if (folder / DEFAULT_FILE).is_file():
        files = [folder / DEFAULT_FILE]
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise BackboneUnavailable(f"{model}: expected one CAM++ state dict ({'/'.join(WEIGHT_PATTERNS)}) in {folder}, "
                                  f"found {found}")
    try:
        state = torch.load(files[0], map_location="cpu", weights_only=True)  # no pickled code runs
    except Exception as err:
        raise BackboneUnavailable(f"{files[0]}: not a readable PyTorch state dict ({type(err).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return files[0], state


def build(state: dict[str, torch.Tensor], model: str) -> CAMPPlus:
    """The CAM++ the state dict was saved from (its sizes read from the weights: the published ones use
    3D-Speaker's defaults, 80 bins, growth 32, 128 initial and 32 front-end channels), loaded strictly."""
    try:
        m_channels = int(state["head.conv1.weight"].shape[0])
        growth_rate = int(state["xvector.block1.tdnnd1.cam_layer.linear_local.weight"].shape[0])
        sizes = dict(embedding_size=int(state["xvector.dense.linear.weight"].shape[0]),
                     feat_dim=int(state["xvector.tdnn.linear.weight"].shape[1]) // m_channels * 8,
                     init_channels=int(state["xvector.tdnn.linear.weight"].shape[0]), m_channels=m_channels,
                     growth_rate=growth_rate,
                     bn_size=int(state["xvector.block1.tdnnd1.linear1.weight"].shape[0]) // growth_rate)
    except (KeyError, AttributeError, IndexError, ZeroDivisionError):
        raise BackboneUnavailable(f"{model}: not a CAM++ state dict (no xvector.dense / xvector.tdnn / head.conv1 "
                                  "weights)") from None
    network = CAMPPlus(**sizes)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        key = (missing or unexpected or wrong)[0]
        raise BackboneUnavailable(f"{model}: not the CAM++ of 3D-Speaker ({len(missing)} missing, {len(unexpected)} "
                                  f"unexpected, {len(wrong)} misshapen weights, e.g. {key})")
    network.load_state_dict(state, strict=True)
    return network.eval()


class CAMPPlusBackbone:
    precisions = PRECISIONS
    sample_rate = SAMPLE_RATE

    def __init__(self, request):
        self.name = request.name
        self.device = torch.device(request.device if request.device not in ("", "auto") else
                                   ("cuda" if torch.cuda.is_available() else "cpu"))
        self.layers = select_layers(request.layers, ("embedding",), default="embedding")
        require("torchaudio.compliance.kaldi", "campplus", "speech")  # before any download
        # the default repository is known to hold DEFAULT_FILE; any hub repository holds .gitattributes
        probe = DEFAULT_FILE if request.target == DEFAULT_MODEL else ".gitattributes"
        self.checkpoint = fetch_checkpoint(request.target, request.revision, list(WEIGHT_PATTERNS),
                                           kind=request.kind, probe=probe)
        weights, state = read_state_dict(self.checkpoint.folder, self.checkpoint.source.model_id)
        self.weights_file = weights.name
        self.network = build(state, self.checkpoint.source.model_id).to(self.device)
        self.dim = int(state["xvector.dense.linear.weight"].shape[0])
        self.revision = checkpoint_revision(self.checkpoint, [weights])

    def embed(self, waveforms: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        out = np.full((len(waveforms), self.dim), np.nan, np.float32)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            features = {}
            for i, wave in enumerate(waveforms):
                wave = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32).reshape(-1))
                if len(wave) >= 400:  # one 25 ms Kaldi frame
                    frames = fbank(wave)
                    if frames.shape[0] >= 4:  # the strided TDNN and the std pooling need a few frames
                        features[i] = frames
            by_length = defaultdict(list)  # equal lengths batch without padding: batch-mates change nothing
            for i, frames in features.items():
                by_length[frames.shape[0]].append(i)
            for idx in by_length.values():
                batch = torch.stack([features[i] for i in idx]).to(self.device)
                out[idx] = self.network(batch).float().cpu().numpy()
        return {"embedding": out}

    def provenance(self) -> Provenance:
        return Provenance(model_id=self.checkpoint.source.model_id, revision=self.revision, sample_rate=SAMPLE_RATE,
                          dim=self.dim, layers=self.layers,
                          pooling="CAM++ statistics pooling (mean and std over frames) → dense layer",
                          options={"kind": "campplus", "weights": self.weights_file,
                                   "front_end": "kaldi fbank 80 bins, 25/10 ms, no dither, mean-normalised"},
                          packages=package_versions("torchaudio"))


def load(request) -> CAMPPlusBackbone:
    return CAMPPlusBackbone(request)
