"""Where an `hf:` backbone comes from: aliases, local dirs or hub ids, the hub probe, revisions.

Nothing here runs a model. The hub is asked once, with a short timeout, whether it answers;
when it does not, the model is loaded from the local cache or refused in one line, instead of
huggingface_hub's five retries with backoff (about 23 s here) and a long traceback.

Some aliases (MERT, CultureMERT) need their repository's own Python code, which transformers
imports and runs: whoever can push to that repository runs code on this machine. Such an alias
loads only a pinned commit (its `revision`, or `revision=<commit>` from the user), so the code
that runs is the code someone read, and a later push changes nothing here.
"""
from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path

HUB_TIMEOUT_S = 5.0  # one HEAD request for config.json; a dead DNS fails at once anyway


class BackboneUnavailable(RuntimeError):
    """The model cannot be loaded here (offline, unknown id, refused remote code); one line."""


class RemoteCodeRefused(BackboneUnavailable):
    """The model ships its own Python code and trust_remote_code is off."""


COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class AliasSpec:
    hub_id: str
    trust_remote_code: bool = False  # known to need the repository's own modeling code
    kind: str = "encoder"            # encoder | whisper | clap (detected from config.model_type)
    note: str = ""
    # The commit loaded by default. Required before an alias may run remote code: an empty pin
    # means no commit of that repository has been verified, and the user must pass revision=.
    revision: str = ""


ALIASES: dict[str, AliasSpec] = {
    # 12af15f…: the commit that public lockfiles, HF-cache snapshot paths and pinned manifests of
    # several projects agree on for m-a-p/MERT-v1-95M (found via code search; the hub itself is not
    # reachable from where this was written).
    "mert-v1-95m": AliasSpec("m-a-p/MERT-v1-95M", True, "encoder", "24 kHz, layers 0-12, 768-d",
                             revision="12af15fef9d0ac838c3f475bfbbf26d2060dd4f5"),
    # No commit of these two could be verified (one source each, disagreeing): revision= is required.
    "mert-v1-330m": AliasSpec("m-a-p/MERT-v1-330M", True, "encoder", "24 kHz, layers 0-24, 1024-d"),
    "culturemert-95m": AliasSpec("ntua-slp/CultureMERT-95M", True, "encoder", "MERT-95M adapted to non-Western music"),
    "clap": AliasSpec("laion/clap-htsat-unfused", False, "clap", "48 kHz, projected audio embedding, 512-d"),
    # seed 002's model (laion_clap's 630k-audioset-fusion-best, converted to transformers by LAION)
    "clap-fused": AliasSpec("laion/clap-htsat-fused", False, "clap",
                            "48 kHz, feature fusion for clips over 10 s, projected audio embedding, 512-d"),
    "whisper-base": AliasSpec("openai/whisper-base", False, "whisper", "16 kHz, encoder only, layers 0-6, 512-d"),
    "wav2vec2-base": AliasSpec("facebook/wav2vec2-base", False, "encoder", "16 kHz, layers 0-12, 768-d"),
    "hubert-base": AliasSpec("facebook/hubert-base-ls960", False, "encoder", "16 kHz, layers 0-12, 768-d"),
}


@dataclass(frozen=True)
class Source:
    model_id: str            # hub id, or the absolute local directory
    local: bool
    alias: str | None = None

    @property
    def spec(self) -> AliasSpec | None:
        return ALIASES.get(self.alias) if self.alias else None


def resolve(model: str) -> Source:
    """An alias name, `hf:<hub id>`, `hf:<local dir>`, or the bare id/dir."""
    if model in ALIASES:
        return Source(ALIASES[model].hub_id, local=False, alias=model)
    target = model[3:] if model.startswith("hf:") else model
    path = Path(target).expanduser()
    if path.is_dir():
        return Source(str(path.resolve()), local=True)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(target)
    except HFValidationError:
        raise BackboneUnavailable(f"hf:{target}: no such local directory, and not a Hugging Face hub id "
                                  f"(owner/name)") from None
    return Source(target, local=False)


def pinned_revision(source: Source, revision: str) -> str:
    """The revision to load: the one given, else the alias's pin. An alias that runs its
    repository's code loads only a commit, never a branch that can move."""
    if source.local:
        if revision:
            raise BackboneUnavailable(f"revision={revision}: {source.model_id} is a local directory, identified by "
                                      "a sha256 of its files; revision= is for hub ids")
        return ""
    spec = source.spec
    revision = revision or (spec.revision if spec else "")
    if spec and spec.trust_remote_code and not COMMIT.fullmatch(revision):
        given = f"revision={revision} is not a commit" if revision else "no reviewed commit of it is pinned here"
        raise RemoteCodeRefused(
            f"{source.alias} runs the Python code in the hub repository {source.model_id} and {given}: read its .py "
            f"files at https://huggingface.co/{source.model_id}/tree/main, then pass revision=<the 40-character "
            "commit you read> to run exactly that code")
    return revision


def offline_message(model_id: str, revision: str = "", kind: str = "hf") -> str:
    at = f" --revision {revision}" if revision else ""
    return (f"cannot load {model_id!r} from the Hugging Face hub (offline?) and it is not in the local cache: "
            f"download it on a connected machine (hf download {model_id}{at} --local-dir DIR) and pass {kind}:DIR")


def hub_reachable(model_id: str, revision: str = "", probe: str = "config.json") -> bool:
    """True when the hub answers for this repository; False when it cannot be reached.

    Raises BackboneUnavailable when the hub answers that the model is not there (or gated).
    """
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    # huggingface_hub < 1.0 raised EntryNotFoundError for a missing remote file
    RemoteEntryNotFoundError = getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)

    try:
        get_hf_file_metadata(hf_hub_url(model_id, probe, revision=revision or None), timeout=HUB_TIMEOUT_S)
        return True
    except GatedRepoError:
        raise BackboneUnavailable(f"cannot load {model_id!r}: the repository is gated; accept its terms on "
                                  "huggingface.co and log in (hf auth login)") from None
    except RevisionNotFoundError:
        raise BackboneUnavailable(f"cannot load {model_id!r}: the hub has no revision {revision!r} of it") from None
    except RepositoryNotFoundError:
        raise BackboneUnavailable(f"cannot load {model_id!r}: no such model on the Hugging Face hub "
                                  "(or it is private)") from None
    except RemoteEntryNotFoundError:
        what = "a transformers model" if probe == "config.json" else "the checkpoint this backbone reads"
        raise BackboneUnavailable(f"cannot load {model_id!r}: it has no {probe}, so it is not {what}") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else 0
        if status in (401, 403):
            raise BackboneUnavailable(f"cannot load {model_id!r}: the hub refused access "
                                      f"(HTTP {status}); log in (hf auth login)") from None
        return False
    except Exception:  # DNS, refused connection, timeout, HF_HUB_OFFLINE: all mean "no hub here"
        return False


def remote_code_check(source: Source, config_dict: dict, trust: bool) -> bool:
    """Whether loading runs the repository's own code; refuses in one line when it must and may not."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    auto_map = config_dict.get("auto_map") or {}
    needs = bool(auto_map) and config_dict.get("model_type") not in CONFIG_MAPPING
    if needs and not trust:
        entry = auto_map.get("AutoModel") or next(iter(auto_map.values()))
        raise RemoteCodeRefused(
            f"{source.model_id} ships its own model code ({entry}) and running it is code execution, so it "
            "is off by default: pass trust_remote_code=true to opt in")
    return needs


def revision(source: Source, config, remote_code: bool, requested: str = "") -> str:
    """The hub commit the files came from, or a sha256 over a local dir's weight files.

    For a local dir whose model runs its own code, the `*.py` files are hashed too: they change
    the vectors as much as the weights do.
    """
    if not source.local:
        return hub_commit(source.model_id, requested) or getattr(config, "_commit_hash", None) or "unknown"
    root = Path(source.model_id)
    patterns = ["*.safetensors", "*.bin"] + (["*.py"] if remote_code else [])
    files = sorted({p for pattern in patterns for p in root.glob(pattern) if p.is_file()})
    if not files:
        return "no-weight-files"
    return files_digest(files)


def hub_commit(model_id: str, requested: str) -> str | None:
    """The commit a hub model was just loaded from: the cache's snapshot folder holding its
    config.json (transformers 5 no longer sets `config._commit_hash`)."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, "config.json", revision=requested or None)
    folder = Path(cached).parent.name if isinstance(cached, str) else ""
    return folder if COMMIT.fullmatch(folder) else None


def read_config_dict(source: Source, offline: bool, revision: str = "") -> dict:
    """config.json as a plain dict, without importing or running any model code."""
    if source.local:
        path = Path(source.model_id) / "config.json"
        if not path.is_file():
            raise BackboneUnavailable(f"{source.model_id}: no config.json, so it is not a transformers model dir "
                                      "(save one with model.save_pretrained(DIR))")
        if not (path.parent / "preprocessor_config.json").is_file():
            raise BackboneUnavailable(f"{source.model_id}: no preprocessor_config.json; save the model's feature "
                                      "extractor beside it (AutoFeatureExtractor...save_pretrained(DIR))")
        return json.loads(path.read_text())
    from transformers import PretrainedConfig

    config_dict, _ = PretrainedConfig.get_config_dict(source.model_id, local_files_only=offline,
                                                      revision=revision or None)
    return config_dict


# -- checkpoints read by other code than transformers' from_pretrained (muq, speechbrain, ports) ---

@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's files on this machine, and where they came from."""

    folder: Path
    source: Source
    revision: str   # the hub commit of the snapshot, or "" for a local directory


def fetch_checkpoint(target: str, revision: str, patterns: list[str], kind: str, probe: str) -> Checkpoint:
    """A local directory as it is, or the hub snapshot files matching `patterns` (downloaded, or from
    the cache when the hub cannot be reached). Refuses in one line when they cannot be had here.

    `kind` is the backbone spelling the offline message suggests (`muq:DIR`); `probe` is a file
    every checkpoint of this kind has, asked for to tell "offline" from "no such model".
    """
    source = resolve(f"hf:{target}")
    if source.local:
        if revision:
            raise BackboneUnavailable(f"revision={revision}: {source.model_id} is a local directory, identified by "
                                      "a sha256 of its files; revision= is for hub ids")
        return Checkpoint(Path(source.model_id), source, "")
    from huggingface_hub import snapshot_download

    offline = not hub_reachable(source.model_id, revision, probe=probe)
    try:
        folder = Path(snapshot_download(source.model_id, revision=revision or None, allow_patterns=patterns,
                                        local_files_only=offline))
    except Exception as err:
        if offline:
            raise BackboneUnavailable(offline_message(source.model_id, revision, kind)) from None
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise BackboneUnavailable(f"cannot download {source.model_id}: {first}") from err
    wanted = any(fnmatch.fnmatch(probe, pattern) for pattern in patterns)
    if wanted and not (folder / probe).is_file():  # a cached snapshot from another download may lack files
        if offline:
            raise BackboneUnavailable(offline_message(source.model_id, revision, kind))
        raise BackboneUnavailable(f"{source.model_id}: no {probe} in the downloaded snapshot")
    commit = folder.name if COMMIT.fullmatch(folder.name) else "unknown"
    return Checkpoint(folder, source, commit)


def files_digest(paths: list[Path]) -> str:
    """sha256 over the bytes of these files, in the order given: a local checkpoint's identity.
    Remembered by the files' stat (embed.file_digest), so a job does not re-read the weights."""
    from embed.file_digest import sha256_of

    return "sha256:" + sha256_of(paths)


def checkpoint_revision(checkpoint: Checkpoint, weights: list[Path]) -> str:
    """What the backbones row records: the hub commit, or a sha256 of a local directory's weights."""
    return checkpoint.revision or files_digest(sorted(weights))
