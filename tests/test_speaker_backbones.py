"""Speaker encoders: `campplus` (a port of 3D-Speaker's CAM++) and `ecapa` (SpeechBrain).

Both load by their registered names from a Hugging Face cache entry with the hub unreachable, the
code path a downloaded checkpoint takes. CAM++'s state-dict keys and shapes are checked against the
list 3D-Speaker's own code produces (tests/fixtures/campplus_cn_common_state_dict.tsv).
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny_models
from tiny_models import cached_repo, noise, no_hub  # noqa: F401  (no_hub is a fixture)

from embed import registry
from embed.hf_source import BackboneUnavailable, RemoteCodeRefused

FIXTURES = Path(__file__).parent / "fixtures"
COMMIT = "4" * 40

needs_speech = pytest.mark.skipif(importlib.util.find_spec("speechbrain") is None
                                  or importlib.util.find_spec("torchaudio") is None,
                                  reason="the [speech] extra is not installed")


def published_state_dict() -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in (FIXTURES / "campplus_cn_common_state_dict.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            rows.append((key, tuple(int(n) for n in shape.split(",") if n), dtype))
    return rows


# -- CAM++ -----------------------------------------------------------------------------------------

def test_campplus_state_dict_is_the_published_checkpoints():
    """Keys, order, shapes and dtypes as 3D-Speaker's CAMPPlus(feat_dim=80, embedding_size=192) has them,
    which is what campplus_cn_common.bin holds: a real download loads with no missing or unexpected key."""
    from embed.campplus import CAMPPlus

    ours = [(k, tuple(v.shape), str(v.dtype).replace("torch.", ""))
            for k, v in CAMPPlus(feat_dim=80, embedding_size=192).state_dict().items()]
    assert ours == published_state_dict()
    assert len(ours) == 937
    # the float32 tensors fill 27.7 MB: the published file is 28,036,335 bytes (pickle framing adds ~1%)
    floats = sum(int(np.prod(shape)) for _, shape, dtype in ours if dtype == "float32")
    assert floats * 4 == 27_722_880
    # the 512-d VoxCeleb model (campplus_voxceleb.bin) differs only in its last dense layer
    large = {k: tuple(v.shape) for k, v in CAMPPlus(feat_dim=80, embedding_size=512).state_dict().items()}
    differ = {k for k, shape, _ in ours if large[k] != shape}
    assert differ == {"xvector.dense.linear.weight", "xvector.dense.nonlinear.batchnorm.running_mean",
                      "xvector.dense.nonlinear.batchnorm.running_var"}


@pytest.fixture(scope="module")
def campplus_dir(tmp_path_factory) -> Path:
    return tiny_models.campplus(tmp_path_factory.mktemp("campplus"))


@needs_speech
def test_campplus_by_name_from_the_cache(no_hub, campplus_dir):
    import torchaudio.compliance.kaldi as kaldi

    from embed.campplus import fbank

    cached_repo("funasr/campplus", {COMMIT: campplus_dir}, main=COMMIT)
    backbone = registry.load("campplus", "", "cpu", "fp32", None)
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("embedding",), 24, 16000)
    clips = [noise(1.0, 16000, 1), noise(1.7, 16000, 2), noise(1.0, 16000, 3)]
    out = backbone.embed(clips)["embedding"]
    assert out.shape == (3, 24) and np.isfinite(out).all()
    np.testing.assert_allclose(backbone.embed([clips[0]])["embedding"][0], out[0], atol=1e-5)  # batch-mates
    np.testing.assert_array_equal(registry.load("campplus", "", "cpu", "fp32", None).embed(clips)["embedding"], out)
    # the front end is 3D-Speaker's: Kaldi fbank, 80 bins, no dither, minus the time mean
    wave = torch.from_numpy(clips[1])
    reference = kaldi.fbank(wave[None], num_mel_bins=80, sample_frequency=16000, dither=0)
    torch.testing.assert_close(fbank(wave), reference - reference.mean(0, keepdim=True))
    assert np.isnan(backbone.embed([np.zeros(200, np.float32)])["embedding"]).all()  # shorter than a frame
    prov = backbone.provenance()
    assert (prov.model_id, prov.revision, prov.options["weights"]) == ("funasr/campplus", COMMIT,
                                                                       "campplus_cn_common.bin")
    with pytest.raises(BackboneUnavailable) as offline:
        registry.load("campplus:someone/not-cached", "", "cpu", "fp32", None)
    assert "\n" not in str(offline.value) and "campplus:DIR" in str(offline.value)


@needs_speech
def test_campplus_refuses_what_is_not_its_checkpoint(campplus_dir, tmp_path):
    state = torch.load(campplus_dir / "campplus_cn_common.bin", weights_only=True)
    del state["xvector.block2.tdnnd3.linear1.weight"]
    torch.save(state, tmp_path / "campplus_cn_common.bin")
    with pytest.raises(BackboneUnavailable, match="1 missing, 0 unexpected"):
        registry.load(f"campplus:{tmp_path}", "", "cpu", "fp32", None)
    with pytest.raises(ValueError, match="no layer 'stats'"):
        registry.load(f"campplus:{campplus_dir}", "stats", "cpu", "fp32", None)


@needs_speech
def test_speaker_probe_on_campplus_vectors(no_hub, campplus_dir):
    """The scorer's adversary check: `just embed dataset=demo backbone=campplus`, then a probe on speaker_id."""
    from embed import engine, store
    from embed.engine import EmbedConfig
    from heads.train import train
    from ingest.api import ingest
    from lake.cli import make_console
    from lake.splits import SplitConfig
    from lake.splits import run as make_split

    cached_repo("funasr/campplus", {COMMIT: campplus_dir}, main=COMMIT)
    ingest("demo", n=100, duration_s=1.0, workers=1)
    result = engine.run(EmbedConfig(dataset="demo", backbone="campplus", loader_workers=0, batch_size=25))
    assert result.embedded == 100 and not result.failures
    row = store.read_backbone("campplus")
    assert (row["dim"], row["sample_rate"], row["revision"]) == (24, 16000, COMMIT)
    quiet = make_console(stderr=True, quiet=True)
    assert make_split(SplitConfig(dataset="demo", name="default", stratify=("label",)), quiet) == 0
    run = train("probe", dataset="demo", backbone="campplus", target="speaker_id")
    assert len(run.metrics["data"]["classes"]) == 10  # the demo's ten singers
    assert 0 <= run.metrics["test"]["accuracy"] <= 1


# -- ECAPA -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ecapa_dir(tmp_path_factory) -> Path:
    if importlib.util.find_spec("speechbrain") is None:
        pytest.skip("the [speech] extra is not installed")
    return tiny_models.ecapa(tmp_path_factory.mktemp("ecapa"))


@needs_speech
def test_ecapa_by_name_from_the_cache_is_speechbrains_encode_batch(no_hub, ecapa_dir):
    from speechbrain.inference.speaker import EncoderClassifier

    cached_repo("speechbrain/spkrec-ecapa-voxceleb", {COMMIT: ecapa_dir}, main=COMMIT)
    backbone = registry.load("ecapa", "", "cpu", "fp32", None)
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("embedding",), 12, 16000)
    clips = [noise(1.0, 16000, 4), noise(1.3, 16000, 5)]
    out = backbone.embed(clips)["embedding"]
    assert out.shape == (2, 12) and np.isfinite(out).all()
    reference = EncoderClassifier.from_hparams(source=str(ecapa_dir), overrides={"pretrained_path": str(ecapa_dir)})
    with torch.no_grad():
        expected = reference.encode_batch(torch.from_numpy(clips[1])[None])[0, 0].numpy()
    np.testing.assert_allclose(out[1], expected, atol=1e-5)
    np.testing.assert_array_equal(registry.load("ecapa", "", "cpu", "fp32", None).embed(clips)["embedding"], out)
    prov = backbone.provenance()
    assert (prov.model_id, prov.revision) == ("speechbrain/spkrec-ecapa-voxceleb", COMMIT)
    assert prov.options["trust_remote_code"] == "false"
    # later code that walks sys.modules (inspect.getmodule, hypothesis) meets no SpeechBrain proxy that
    # raises ImportError for an optional package (k2) that is not installed
    import sys

    for module in list(sys.modules.values()):
        getattr(module, "__file__", None)


@needs_speech
def test_ecapa_yaml_that_runs_other_code_is_refused(ecapa_dir, tmp_path):
    hostile = Path(shutil.copytree(ecapa_dir, tmp_path / "hostile"))
    yaml = (hostile / "hyperparams.yaml").read_text()
    (hostile / "hyperparams.yaml").write_text(yaml + "\nboom: !apply:os.getcwd []\n")
    with pytest.raises(RemoteCodeRefused, match="runs os.getcwd.*trust_remote_code=true"):
        registry.load(f"ecapa:{hostile}", "", "cpu", "fp32", None)
    (hostile / "classifier.ckpt").unlink()
    with pytest.raises(BackboneUnavailable, match="no classifier.ckpt"):
        registry.load(f"ecapa:{hostile}", "", "cpu", "fp32", True)
