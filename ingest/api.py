"""`ingest(...)`: the one entry point behind `just ingest`, also used by tests and notebooks."""
from __future__ import annotations

import dataclasses
from typing import Any

from rich.console import Console

from ingest import build, sources
from ingest.source import SourceError
from lake.cli import UsageError, parse_config


def split_options(dataset: str, options: dict[str, str]) -> tuple[build.IngestOptions, Any, Any]:
    """Parses `key=value` strings into (ingest options, source module, source config)."""
    common = {f.name for f in dataclasses.fields(build.IngestOptions)}
    ingest_pairs = {k: v for k, v in options.items() if k in common}
    try:
        name, preset = sources.resolve(dataset, ingest_pairs.get("source", ""))
    except KeyError as err:
        raise UsageError(err.args[0]) from None
    ingest_pairs["source"] = name
    ingest_options = parse_config(build.IngestOptions, {"dataset": dataset, **ingest_pairs})
    module = sources.SOURCES[name]
    source_pairs = {**preset, **{k: v for k, v in options.items() if k not in common}}
    try:
        source_cfg = parse_config(module.Config, source_pairs)
    except UsageError as err:
        raise UsageError(f"source={name}: {err}") from None
    return ingest_options, module, source_cfg


def ingest(dataset: str, console: Console | None = None, **options: Any) -> build.IngestResult:
    """Ingests a dataset; options are the CLI's `key=value` pairs (values may be non-strings)."""
    as_text = {k: _text(v) for k, v in options.items()}
    ingest_options, module, source_cfg = split_options(dataset, as_text)
    if hasattr(module, "ingest_table"):  # a table source (playlists): no audio, no shards
        return module.ingest_table(dataset, source_cfg)
    total = module.count(source_cfg) if hasattr(module, "count") else None
    result = build.run(ingest_options, module.items(source_cfg), module.fingerprint(source_cfg),
                       total=total, console=console)
    if hasattr(module, "after_commit"):  # a source's own table beside tracks (term_chunks: glossary)
        module.after_commit(source_cfg, dataset)
    return result


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


__all__ = ["ingest", "SourceError"]
