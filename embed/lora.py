"""`lora:<run_id>`: an `hf:` backbone with a LoRA run's adapter merged into its weights.

The run is found through the `runs` table (head=lora); its folder holds what the LoRA head
wrote (embed/adapters.py): `adapter/` (peft's `save_pretrained`), `unfrozen.safetensors` when
`unfreeze_layers>0` (the fully trained layers, under the base model's key names), and
`lora.json` naming the base backbone, its revision, the layer the head pooled and
`adapter_sha256`. The base loads through the ordinary hf loader at the run's revision; the
unfrozen layers are loaded into it first (they are what the adapters were trained on top of),
then the adapter is applied with peft and merged, so embedding costs what the base costs.

The adapter's hash is checked against the files before anything loads and is part of the
vector settings (a name never mixes vectors of two adapters) and of the provenance row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from embed.backbone import Provenance
from embed.hf import HFBackbone
from embed.hf_source import resolve as resolve_source
from lake.errors import one_line

PRECISIONS = HFBackbone.precisions
# what peft's save_pretrained always writes; the whole layout is defined in embed/adapters.py
ADAPTER_FILES = ("adapter/adapter_config.json", "adapter/adapter_model.safetensors")
RECORD = "lora.json"


@dataclass(frozen=True)
class LoraRun:
    run_id: str
    folder: Path
    base: str              # the base backbone as the head loaded it: hf:<id or dir>, or an hf alias
    revision: str          # what the base loaded as: a hub commit, or a local dir's weight digest
    layer: str             # the stored layer name the head pooled: the default layer to embed
    adapter_sha256: str    # embed.adapters.digest of the run folder, as lora.json records it

    def vector_settings(self) -> dict[str, str]:
        """What vectors made with this adapter depend on beyond the backbone spelling."""
        return {"adapter_sha256": self.adapter_sha256, "base": self.base, "base_revision": self.revision}


def find_run(run_id: str) -> LoraRun:
    """The run's row and record; one line (ValueError) for an unknown run, a run of another head,
    a missing record or adapter file."""
    import duckdb

    from lake import catalog, paths

    spelling = f"lora:{run_id}"
    try:
        found = catalog.connect().execute("SELECT head, path FROM runs WHERE run_id = $r", {"r": run_id}).fetchall()
    except duckdb.Error:  # no runs at all: the view is not there
        found = []
    if not found:
        raise ValueError(f"{spelling}: run {run_id!r} is not in the runs table (just runs lists them)")
    head, path = found[0]
    if head != "lora":
        raise ValueError(f"{spelling}: run {run_id} is a {head} run, not a LoRA run (head=lora)")
    folder = paths.root() / (path or "")
    record_file = folder / RECORD
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        base, layer, digest = record["base"], record["layer"], record["adapter_sha256"]
    except OSError:
        raise ValueError(f"{spelling}: {record_file} is missing: the run wrote no LoRA record") from None
    except KeyError as err:
        raise ValueError(f"{spelling}: {record_file} has no {err.args[0]!r}: it is not a LoRA record") from None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{spelling}: {record_file} is not a LoRA record ({one_line(err)})") from None
    for file in [folder / name for name in ADAPTER_FILES]:
        if not file.is_file():
            raise ValueError(f"{spelling}: {file} is missing: the run's adapter is incomplete")
    return LoraRun(run_id, folder, str(base), str(record.get("revision") or ""), str(layer), str(digest))


def verified(run: LoraRun) -> LoraRun:
    """The run, once its files hash to what lora.json records (a changed adapter would store
    vectors under the identity of another)."""
    from embed.adapters import ADAPTER_DIR, UNFROZEN_FILE, digest

    found = digest(run.folder)
    if found != run.adapter_sha256:
        names = [f"{ADAPTER_DIR}/"] + ([UNFROZEN_FILE] if (run.folder / UNFROZEN_FILE).is_file() else [])
        raise ValueError(f"lora:{run.run_id}: {' + '.join(names)} in {run.folder} hash to {found[:12]}…, not the "
                         f"adapter_sha256 {run.adapter_sha256[:12]}… its {RECORD} records: the adapter changed "
                         "after training")
    return run


def vector_settings(run_id: str) -> dict[str, str]:
    """What the vectors depend on beyond the backbone spelling: the adapter (verified now, so a
    tampered one stops the job before it plans anything) and the base it adapts."""
    return verified(find_run(run_id)).vector_settings()


class LoraBackbone:
    """An HFBackbone whose module carries the merged adapter; its provenance names the base and
    the adapter."""

    precisions = PRECISIONS

    def __init__(self, inner: HFBackbone, run: LoraRun):
        self.inner, self.run = inner, run
        self.name, self.sample_rate, self.dim = inner.name, inner.sample_rate, inner.dim
        self.layers, self.max_seconds = inner.layers, inner.max_seconds

    def embed(self, waveforms):
        return self.inner.embed(waveforms)

    def identity(self) -> dict[str, str]:
        """The vector settings these weights were loaded for (the worker checks the job's against them)."""
        return self.run.vector_settings()

    def provenance(self) -> Provenance:
        prov = self.inner.provenance()
        prov.options = {**prov.options, "lora_run": self.run.run_id, "lora_base": self.run.base,
                        "adapter_sha256": self.run.adapter_sha256}
        prov.packages = {**prov.packages, **_peft_version()}
        return prov


def _peft_version() -> dict[str, str]:
    from lake.versions import package_versions

    return package_versions("peft")


def merge_adapter(module, run: LoraRun):
    """The base module with the run's unfrozen blocks and adapters loaded (embed.adapters.restore:
    the unfrozen weights first, as the adapters were trained on top of them), the adapters merged."""
    from embed.adapters import restore

    try:
        adapted = restore(module, run.folder)
    except Exception as err:  # AdaptError, peft's or safetensors' own: an adapter for other modules or shapes
        raise ValueError(f"lora:{run.run_id}: cannot apply {run.folder} to {run.base}: {one_line(err)}") from None
    return adapted.merge_and_unload().eval()


def load(request) -> LoraBackbone:
    from embed import registry

    if request.revision:
        raise ValueError(f"revision={request.revision}: lora:{request.target} loads its base at the revision the "
                         "run trained on")
    run = verified(find_run(request.target))
    if registry.entry(run.base).module != "embed.hf":
        raise ValueError(f"lora:{run.run_id}: its base {run.base} is not an hf: backbone; lora: re-embeds hf: "
                         "bases only")
    # the run records the revision its base loaded: a hub commit, loaded again; or a local dir's
    # weight digest, which the dir must still have (an adapter on other weights is another model)
    local = resolve_source(run.base).local
    inner = registry.load(run.base, request.layers or run.layer, request.device, request.precision,
                          request.trust_remote_code, revision="" if local else run.revision, name=request.name)
    if run.revision and inner.revision != run.revision:
        raise ValueError(f"lora:{run.run_id}: its base {run.base} now loads weights {inner.revision[:19]}…, not "
                         f"{run.revision[:19]}… the run trained on")
    inner.module = merge_adapter(inner.module, run)
    return LoraBackbone(inner, run)
