"""Backbone names → loaders: one entry per backbone in BACKBONES, one module per kind.

An entry names the module that implements it; the module is imported only when the backbone is
used, and it provides `PRECISIONS` (what `embed()` really computes in, known before any weights
load) and `load(request) -> Backbone`. Adding a backbone is one entry here and one module.

Spellings: a name from BACKBONES (`muq`, `clap`, ...), or, for kinds that load a checkpoint,
`<kind>:<hub id or local dir>` (`hf:/models/my-encoder`, `muq:/models/muq`, `campplus:DIR`).
Naming a backbone imports nothing heavy: the table is plain data.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from embed.backbone import Backbone, name_from_path
from embed.hf_source import ALIASES


@dataclass(frozen=True)
class Entry:
    module: str           # provides PRECISIONS and load(Request); imported on use only
    model: str = ""       # the checkpoint loaded by default: a hub id ("" for built-ins and hf:)
    revision: str = ""    # the reviewed hub commit loaded by default ("" = the hub's main)
    about: str = ""       # one line: what it is
    extra: str = ""       # the pip extra its module needs (pip install -e ".[extra]")
    prefix: bool = False  # also spelt `<name>:<hub id or local dir>`
    # only spelt `<name>:<target>`: what the target is ("a model: hf:<hub id or local model dir>");
    # the bare name is refused with it, and it is listed as a form, not as a name
    needs: str = ""
    # "audio": the engine embeds each clip of the shards. Anything else names the lake table the
    # backbone learns from instead (its module's `run` trains it; `python -m embed` dispatches).
    reads: str = "audio"

    @property
    def loads_checkpoint(self) -> bool:
        return bool(self.model) or self.prefix


@dataclass(frozen=True)
class Request:
    """What a backbone module's `load` receives."""

    backbone: str          # the canonical spelling, e.g. `muq` or `muq:/models/muq`
    kind: str              # its BACKBONES key, e.g. `muq`
    target: str            # hub id or local dir to load ("" for built-ins)
    layers: str
    device: str
    precision: str
    trust_remote_code: bool | None
    revision: str          # the hub revision asked for (resolved by revision_for)
    name: str              # the label the loaded backbone carries


BACKBONES: dict[str, Entry] = {
    "logmel": Entry("embed.logmel", about="log-mel statistics baseline, no weights"),
    "musicnn-mtt": Entry("embed.musicnn.backbone", about="musicnn tagger (MagnaTagATune), weights from PyPI"),
    "musicnn-msd": Entry("embed.musicnn.backbone", about="musicnn tagger (Million Song Dataset), weights from PyPI"),
    "hf": Entry("embed.hf", prefix=True, about="any transformers audio encoder: hf:<hub id or local dir>",
                needs="a model: hf:<hub id or local model dir>"),
    "lora": Entry("embed.lora", prefix=True,
                  about="an hf: backbone with a LoRA run's adapter merged in: lora:<run_id> (head=lora runs)",
                  needs="a run: lora:<run_id> of a head=lora run (just runs lists them)"),
    **{alias: Entry("embed.hf", spec.hub_id, spec.revision, spec.note) for alias, spec in ALIASES.items()},
    "muq": Entry("embed.muq_backbone", "OpenMuQ/MuQ-large-msd-iter", extra="music", prefix=True,
                 about="MuQ music SSL encoder, 24 kHz, hidden layers 0-12, 1024-d"),
    "muq-mulan": Entry("embed.muq_backbone", "OpenMuQ/MuQ-MuLan-large", extra="music", prefix=True,
                       about="MuQ-MuLan joint music-text space, 24 kHz, 512-d (text side: embed.text)"),
    "campplus": Entry("embed.campplus", "funasr/campplus", extra="speech", prefix=True,
                      about="CAM++ speaker embedding (3D-Speaker, zh-cn common), 16 kHz, 192-d"),
    "ecapa": Entry("embed.ecapa", "speechbrain/spkrec-ecapa-voxceleb", extra="speech", prefix=True,
                   about="SpeechBrain ECAPA-TDNN speaker embedding (VoxCeleb), 16 kHz, 192-d"),
    "qwen2-audio": Entry("embed.qwen2_audio", "Qwen/Qwen2-Audio-7B", prefix=True,
                         about="Qwen2-Audio-7B's audio tower (no language model), 16 kHz, 1280-d; projector 4096-d"),
    "qwen2-audio-instruct": Entry("embed.qwen2_audio", "Qwen/Qwen2-Audio-7B-Instruct",
                                  about="Qwen2-Audio-7B-Instruct's audio tower (no language model)"),
    "item2vec": Entry("embed.item2vec", reads="playlists",
                      about="word2vec over the dataset's playlists (gensim): song vectors from co-occurrence, no audio"),
}


def known_names() -> list[str]:
    return [name for name, entry in BACKBONES.items() if not entry.needs]


def split(backbone: str) -> tuple[str, str]:
    """(kind, explicit target): `muq:/dir` → ("muq", "/dir"); `muq` → ("muq", "")."""
    if backbone in BACKBONES:
        return backbone, ""
    kind, sep, target = backbone.partition(":")
    if sep and kind in BACKBONES and BACKBONES[kind].prefix and target.strip():
        return kind, target
    raise ValueError(
        f"backbone={backbone!r} is not known: use one of {', '.join(known_names())}, or "
        f"{'|'.join(k for k, e in BACKBONES.items() if e.prefix and k != 'lora')}:<hub id or local model dir>, "
        "or lora:<run_id> (a head=lora run)")


def resolve(backbone: str) -> str:
    """Canonical spelling of a backbone argument: a registered name or `<kind>:<hub id or dir>`."""
    kind, _ = split(backbone)
    if backbone == kind and BACKBONES[kind].needs:
        raise ValueError(f"backbone={kind} needs {BACKBONES[kind].needs}")
    return backbone


def entry(backbone: str) -> Entry:
    return BACKBONES[split(backbone)[0]]


def default_name(backbone: str) -> str:
    """The name vectors are stored under when the user gives none: the registered name, or the
    model's last path component for `<kind>:<target>` (`hf:/models/my-mert` → `my-mert`)."""
    kind, target = split(backbone)
    if kind == "lora":  # a run id says which run, not that the vectors are adapted ones
        return f"lora-{name_from_path(target)}"
    return name_from_path(target, fallback=f"{kind}-model") if target else kind


def backbone_module(backbone: str):
    """The module that implements a backbone; importing it loads no weights and no heavy extra."""
    return importlib.import_module(entry(backbone).module)


def precisions(backbone: str) -> tuple[str, ...]:
    """The precisions a backbone really computes in (its module declares them)."""
    return tuple(backbone_module(backbone).PRECISIONS)


def revision_for(backbone: str, revision: str) -> str:
    """The hub revision a backbone loads: the one given, else its entry's reviewed pin."""
    kind, target = split(backbone)
    spec = BACKBONES[kind]
    if kind == "lora" and revision:
        raise ValueError(f"revision={revision}: {backbone} loads its base at the revision the run trained on")
    if not spec.loads_checkpoint:
        if revision:
            raise ValueError(f"revision={revision}: {backbone} loads no hub checkpoint; only backbones that do "
                             "(hf:, muq, campplus, ...) take a revision")
        return ""
    return revision or ("" if target else spec.revision)


def vector_settings(backbone: str) -> dict[str, str]:
    """What a backbone's vectors depend on beyond its spelling, when its module says (a LoRA
    run's adapter hash); {} for most. ValueError in one line when it cannot be told."""
    kind, target = split(backbone)
    settings = getattr(backbone_module(backbone), "vector_settings", None)
    return dict(settings(target)) if settings and target else {}


def load(backbone: str, layers: str, device: str, precision: str,
         trust_remote_code: bool | None, revision: str = "", name: str = "") -> Backbone:
    backbone = resolve(backbone)
    kind, target = split(backbone)
    spec = BACKBONES[kind]
    request = Request(backbone=backbone, kind=kind, target=target or spec.model, layers=layers or "",
                      device=device, precision=precision, trust_remote_code=trust_remote_code,
                      revision=revision, name=name or default_name(backbone))
    return backbone_module(backbone).load(request)
