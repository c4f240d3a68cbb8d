"""`muq` and `muq-mulan` on tiny randomly initialised models built with the `muq` package's own classes
and saved in the hub repos' layout (config.json + model.safetensors).

The registered names load from a Hugging Face cache entry with the hub unreachable: the same code path
a downloaded OpenMuQ checkpoint takes (hub id → cached snapshot → strict load).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny_models
from tiny_models import cached_repo, noise, no_hub  # noqa: F401  (no_hub is a fixture)

from embed import registry
from embed.hf_source import BackboneUnavailable

if importlib.util.find_spec("muq") is None:  # installed but broken is a failure, not a skip
    pytest.skip("the [music] extra is not installed", allow_module_level=True)

COMMIT = "1" * 40


@pytest.fixture(scope="module")
def towers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("muq")
    muq_dir = tiny_models.muq(root / "tiny-muq")
    text_dir = tiny_models.xlm_roberta(root / "tiny-xlm-roberta")
    mulan_dir = tiny_models.muq_mulan(root / "tiny-muq-mulan", muq_dir, text_dir)
    return {"muq": muq_dir, "text": text_dir, "mulan": mulan_dir}


def test_muq_layers_dims_and_the_packages_own_forward(towers):
    from muq import MuQ

    backbone = registry.load(f"muq:{towers['muq']}", "all", "cpu", "fp32", None)
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("0", "1", "2"), 32, 24000)
    clips = [noise(1.0, 24000, 1), noise(1.5, 24000, 2), noise(1.0, 24000, 3)]
    out = backbone.embed(clips)
    assert all(v.shape == (3, 32) and v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())
    # MuQ's own loader and forward give the same hidden states (SongEval reads one of them, layer 6)
    reference = MuQ.from_pretrained(towers["muq"]).eval()
    with torch.no_grad():
        states = reference(torch.from_numpy(clips[1])[None], output_hidden_states=True).hidden_states
    assert len(states) == 3
    for layer in ("0", "1", "2"):
        np.testing.assert_allclose(out[layer][1], states[int(layer)][0].mean(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["1"][0], backbone.embed([clips[0]])["1"][0], atol=1e-6)  # batch-mates change nothing
    assert registry.load(f"muq:{towers['muq']}", "1", "cpu", "fp32", None).layers == ("1",)
    last = registry.load(f"muq:{towers['muq']}", "", "cpu", "fp32", None)
    assert last.layers == ("last",)
    np.testing.assert_allclose(last.embed([clips[0]])["last"][0], out["2"][0], atol=1e-6)
    with pytest.raises(ValueError, match="no layer '7'"):
        registry.load(f"muq:{towers['muq']}", "7", "cpu", "fp32", None)
    assert np.isnan(backbone.embed([np.zeros(100, np.float32)])["0"]).all()  # too short: a recorded failure


def test_muq_by_its_name_from_the_cache_through_the_engine(no_hub, towers, tmp_path):
    from conftest import write_clip
    from embed import engine, store
    from embed.engine import EmbedConfig
    from ingest.api import ingest

    cached_repo("OpenMuQ/MuQ-large-msd-iter", {COMMIT: towers["muq"]}, main=COMMIT)
    for i in range(3):
        write_clip(tmp_path / "in" / f"c{i}.wav", seconds=0.5 + 0.25 * i, rate=16000, seed=i)
    ingest("tiny", source="folder", path=tmp_path / "in", workers=1)
    cfg = EmbedConfig(dataset="tiny", backbone="muq", layers="0,2", loader_workers=0)
    first = engine.run(cfg)
    assert first.embedded == 3 and not first.failures
    row = store.read_backbone("muq")
    assert (row["model_id"], row["revision"], row["sample_rate"], row["dim"], list(row["layers"])) == (
        "OpenMuQ/MuQ-large-msd-iter", COMMIT, 24000, 32, ["0", "2"])
    assert engine.run(cfg).status == "unchanged"

    from lake.embeddings import load

    again = EmbedConfig(dataset="tiny", backbone="muq", layers="0,2", loader_workers=0, name="muq-again")
    engine.run(again)
    from lake import catalog

    catalog.refresh()
    np.testing.assert_array_equal(load("tiny", "muq", layer="2", label=None).matrix,
                                  load("tiny", "muq-again", layer="2", label=None).matrix)


def test_muq_mulan_audio_and_text_in_one_space(no_hub, towers, tmp_path):
    from embed import text

    # as on the hub: the checkpoint's config names its towers by hub id, each cached beside it
    hub_mulan = Path(shutil.copytree(towers["mulan"], tmp_path / "hub-mulan"))
    config = json.loads((hub_mulan / "config.json").read_text())
    config["audio_model"]["name"], config["text_model"]["name"] = "OpenMuQ/MuQ-large-msd-iter", "xlm-roberta-base"
    (hub_mulan / "config.json").write_text(json.dumps(config))
    cached_repo("OpenMuQ/MuQ-MuLan-large", {COMMIT: hub_mulan}, main=COMMIT)
    cached_repo("OpenMuQ/MuQ-large-msd-iter", {"2" * 40: towers["muq"]}, main="2" * 40)
    cached_repo("xlm-roberta-base", {"3" * 40: towers["text"]}, main="3" * 40)

    backbone = registry.load("muq-mulan", "", "cpu", "fp32", None)
    assert (backbone.layers, backbone.dim, backbone.sample_rate) == (("latent",), 8, 24000)
    clips = [noise(1.0, 24000, 4), noise(5.0, 24000, 5)]  # the second spans three 2 s MuLan clips
    audio = backbone.embed(clips)["latent"]
    assert audio.shape == (2, 8) and np.isfinite(audio).all()
    assert abs(np.linalg.norm(audio[0]) - 1) < 1e-5
    np.testing.assert_allclose(backbone.embed(clips)["latent"], audio, atol=1e-6)
    prov = backbone.provenance()
    assert (prov.model_id, prov.revision) == ("OpenMuQ/MuQ-MuLan-large", COMMIT)
    assert prov.options["text_tower"] == f"xlm-roberta-base@{'3' * 40}"

    vectors = text.encode("muq-mulan", ["sad piano song", "fast guitar"])
    assert vectors.matrix.shape == (2, 8) and vectors.matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors.matrix, axis=1), 1, atol=1e-5)
    assert vectors.provenance["text_model"] == "xlm-roberta-base"
    assert vectors.provenance["text_model_revision"] == "3" * 40 and vectors.provenance["revision"] == COMMIT
    similarity = audio @ vectors.matrix.T  # one space: a plain dot product ranks texts for a clip
    assert similarity.shape == (2, 2)
    with pytest.raises(ValueError, match="text 1 is ''"):
        text.encode("muq-mulan", ["ok", ""])
    with pytest.raises(BackboneUnavailable, match="logmel has no text side"):
        text.encode("logmel", ["a song"])


def test_offline_and_not_cached_is_one_line(no_hub):
    with pytest.raises(BackboneUnavailable) as err:
        registry.load("muq", "", "cpu", "fp32", None)
    message = str(err.value)
    assert "\n" not in message and "'OpenMuQ/MuQ-large-msd-iter'" in message and "muq:DIR" in message


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "muq", None)  # as if not installed
    with pytest.raises(BackboneUnavailable, match=r'muq needs the muq package.*pip install -e "\.\[music\]"'):
        registry.load("muq", "", "cpu", "fp32", None)


def test_a_checkpoint_missing_weights_is_refused(towers, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = Path(shutil.copytree(towers["muq"], tmp_path / "broken-muq"))
    state = load_file(broken / "model.safetensors")
    del state[next(k for k in state if k.startswith("model.conformer.layers.1."))]
    save_file(state, broken / "model.safetensors")
    with pytest.raises(BackboneUnavailable, match="partly random"):
        registry.load(f"muq:{broken}", "", "cpu", "fp32", None)
