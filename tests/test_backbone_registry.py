"""The registry: one entry per backbone, one module per kind, nothing heavy imported to name one."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from embed import registry
from embed.hf_source import BackboneUnavailable

SEEDS = ("muq", "muq-mulan", "campplus", "ecapa", "qwen2-audio", "qwen2-audio-instruct", "clap-fused")


def test_every_entry_names_a_module_with_a_loader_and_its_precisions():
    assert set(SEEDS) <= set(registry.known_names())
    for name in registry.known_names():
        module = registry.backbone_module(name)
        assert callable(module.load), name
        assert set(registry.precisions(name)) <= {"fp32", "bf16"} and "fp32" in registry.precisions(name)
    assert registry.BACKBONES["muq"].extra == "music" and registry.BACKBONES["ecapa"].extra == "speech"


def test_naming_and_resolving_import_no_model_package():
    code = ("import sys; from embed import registry, engine\n"
            "for name in registry.known_names(): registry.precisions(name); registry.default_name(name)\n"
            "engine.EmbedConfig(dataset='d', backbone='muq', device='cpu')\n"
            "heavy = [m for m in ('muq', 'speechbrain', 'torchaudio', 'x_clip', 'safetensors.torch') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spellings_names_and_revisions():
    assert registry.resolve("muq") == "muq"
    assert registry.resolve("campplus:/models/cam") == "campplus:/models/cam"
    assert registry.default_name("campplus:/models/cam++ v2/") == "cam-v2"
    assert registry.default_name("hf:/models/my-mert") == "my-mert"
    assert registry.default_name("qwen2-audio") == "qwen2-audio"
    for bad in ("nope", "hf", "logmel:/x", "muq:", "qwen2-audio-instruct:/x"):
        with pytest.raises(ValueError):
            registry.resolve(bad)
    with pytest.raises(ValueError, match="backbone='nope' is not known: use one of .*campplus"):
        registry.resolve("nope")
    pin = registry.BACKBONES["mert-v1-95m"].revision
    assert registry.revision_for("mert-v1-95m", "") == pin and registry.revision_for("muq", "abc") == "abc"
    assert registry.revision_for("muq:/local/dir", "") == ""
    with pytest.raises(ValueError, match="revision=abc: musicnn-mtt loads no hub checkpoint"):
        registry.revision_for("musicnn-mtt", "abc")


def test_the_loader_signature_other_modules_call():
    """embed/engine.py (and the heads' `score`) call registry.load positionally."""
    backbone = registry.load("logmel", "", "cpu", "fp32", None, "")
    assert backbone.layers == ("stats",) and backbone.sample_rate == 22050


@pytest.mark.parametrize("backbone, package, extra", [("ecapa", "speechbrain", "speech"),
                                                      ("campplus", "torchaudio", "speech"),
                                                      ("muq-mulan", "muq", "music")])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, backbone, package, extra):
    for loaded in [m for m in sys.modules if m.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    with pytest.raises(BackboneUnavailable) as err:
        registry.load(backbone, "", "cpu", "fp32", None)
    message = str(err.value)
    assert "\n" not in message and f'pip install -e ".[{extra}]"' in message and package in message


def test_a_broken_compiled_dependency_is_one_line(monkeypatch):
    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "speechbrain":
            raise OSError("libc10_cuda.so: cannot open shared object file")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(BackboneUnavailable, match="importing speechbrain failed .*libc10_cuda.*matching torch"):
        registry.load("ecapa", "", "cpu", "fp32", None)
