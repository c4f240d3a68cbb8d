"""`just embed dataset=NAME backbone=NAME [layers=...] [max_seconds=...] ...`

`backbone=item2vec` learns from the dataset's playlists instead of its audio, with its own keys
(dim=, window=, min_count=, epochs=, ...; see embed/item2vec.py).

Exit status: 0 when every clip has a vector or a recorded failure of its own audio; 1, with
one line, when the job was refused or some clips could not be read (the next run retries
them); 2 for a bad command line.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console

from embed import engine, registry
from embed.engine import EmbedConfig, EmbedRefused, EmbedResult
from ingest.build import IngestFailed
from ingest.source import SourceError
from lake.cli import fail, key_values, make_console, parse_config, run_main


def ensure_ingested(dataset: str, console: Console) -> None:
    """`just embed dataset=gtzan` on a fresh lake ingests gtzan first when it is a known source."""
    if engine.dataset_clips(dataset):
        return
    from ingest.api import ingest
    from ingest.sources import PRESETS, SOURCES

    if dataset not in PRESETS and dataset not in SOURCES or dataset == "folder":
        raise EmbedRefused(f"dataset {dataset!r} is not in the lake: ingest it first, e.g. "
                           f"just ingest dataset={dataset} source=folder path=DIR")
    console.print(f"{dataset} is not ingested yet: ingesting it first")
    ingest(dataset, console=console)


def summary(result: EmbedResult, cfg: EmbedConfig, console: Console) -> None:
    if result.status == "unchanged":
        failed = (f" ({result.already_failed:,} of them without a vector: their audio does not decode, see "
                  f"{result.report})" if result.already_failed else "")
        console.print(f"[green]{cfg.dataset} · {cfg.name}[/]: all {result.already:,} clips already embedded{failed}, "
                      "nothing to do (force=true recomputes)")
        return
    rate = result.embedded / result.seconds if result.seconds else 0.0
    working = result.seconds - result.load_seconds
    share = result.model_seconds / working / result.workers if working > 0 else 0.0
    kind = "Ray workers" if cfg.engine == "ray" else "worker processes"
    where = f" by {result.workers} {kind}" if cfg.engine == "ray" or result.workers > 1 else ""
    console.print(f"[green]{cfg.dataset} · {cfg.name}[/]: embedded {result.embedded:,} clips{where} "
                  f"({result.audio_seconds / 3600:.2f} h of audio) in {result.seconds:.1f} s, {rate:.1f} clips/s, "
                  f"{share:.0%} of it in the model after {result.load_seconds:.1f} s loading; "
                  f"{result.already:,} were already done")
    if result.failures:
        console.print(f"[yellow]{len(result.failures)} clips failed[/], e.g. "
                      f"{result.failures[0]['track_id']}: {result.failures[0]['reason']}")
    if result.parts:
        console.print(f"wrote {len(result.parts)} part(s) to {Path(result.parts[0]).parent}")
    if result.report:
        console.print(f"report {result.report}")


def unread_line(result: EmbedResult) -> str:
    first = result.unread[0]
    return (f"{len(result.unread)} clips could not be read (e.g. {first['track_id']}: {first['reason']}); "
            "nothing is recorded for them, the next run retries them")


def embed_table(pairs: dict[str, str], console: Console) -> int:
    """A backbone that learns from a lake table instead of audio (item2vec: the playlists)."""
    from embed import item2vec

    cfg = parse_config(item2vec.Item2VecConfig, pairs)
    try:
        result = item2vec.run(cfg, console)
    except EmbedRefused as err:
        fail(str(err), code=1)
    item2vec.summary(result, cfg, console)
    return 0


def reads_table(backbone: str) -> bool:
    try:
        return registry.entry(backbone).reads != "audio"
    except ValueError:  # an unknown name: EmbedConfig says so, with the known ones
        return False


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    console = make_console(stderr=True)
    if reads_table(pairs.get("backbone", "")):
        return embed_table(pairs, console)
    try:
        cfg = parse_config(EmbedConfig, pairs)
        ensure_ingested(cfg.dataset, console)
        result = engine.finish(cfg, engine.run(cfg, console))
    except (EmbedRefused, SourceError, IngestFailed) as err:  # the last two from ingesting first
        fail(str(err), code=1)
    except (RuntimeError, OSError) as err:
        fail(" ".join(str(err).split()), code=1)
    summary(result, cfg, console)
    if result.unread:
        fail(unread_line(result), code=1)
    return 0


if __name__ == "__main__":
    run_main(main)
