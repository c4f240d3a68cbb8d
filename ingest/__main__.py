"""`just ingest dataset=NAME [source=...] key=value ...`"""
from __future__ import annotations

from collections import Counter

from rich.console import Console

from ingest.api import ingest
from ingest.build import IngestFailed, IngestResult
from ingest.source import SourceError
from lake import validate_audio
from lake.cli import UsageError, fail, key_values, make_console, run_main
from lake.tables import human_bytes


def summary(result: IngestResult, console: Console) -> None:
    if hasattr(result, "print_summary"):  # a table source (playlists) says what it wrote
        result.print_summary(console)
        return
    if result.status == "unchanged":
        console.print(f"[green]{result.dataset}[/]: source unchanged since the last ingest, nothing written "
                      f"({result.tracks_part}); force=true rebuilds")
        return
    if result.status == "failed":
        console.print(f"[red]{result.dataset}[/]: ingest failed, nothing committed ({result.written:,} readable "
                      f"clip(s), {len(result.skipped)} skipped, {len(result.flagged)} flagged)")
    else:
        rate = result.written / result.seconds if result.seconds else 0.0
        console.print(
            f"[green]{result.dataset}[/]: {result.written:,} clips ({result.audio_hours:.2f} h, "
            f"{human_bytes(result.audio_bytes)}) in {len(result.shards)} shard(s), "
            f"{result.seconds:.1f} s ({rate:,.0f} clips/s)"
        )
    if result.skipped:
        console.print(f"[yellow]skipped {len(result.skipped)}[/] unreadable or invalid:")
        for entry in result.skipped[:20]:
            console.print(f"  {entry['source']}: {entry['reason']}", highlight=False)
        if len(result.skipped) > 20:
            console.print(f"  … and {len(result.skipped) - 20} more")
    if result.flagged:
        console.print(flagged_line(result), highlight=False, soft_wrap=True)
    if result.notes:
        console.print(f"{len(result.notes)} note(s), e.g. {result.notes[0]['track_id']}: {result.notes[0]['note']}",
                      highlight=False, soft_wrap=True)
    if result.duplicates:
        console.print(f"[yellow]{len(result.duplicates)} groups of identical audio[/] (same sha256), e.g. "
                      f"{', '.join(result.duplicates[0][:4])}")
    if result.tracks_part:
        console.print(f"wrote {result.tracks_part}\n      {result.shards[0] if result.shards else ''}"
                      f"{' …' if len(result.shards) > 1 else ''}")
    console.print(f"report {result.report}", highlight=False)


def flagged_line(result: IngestResult) -> str:
    """One line: how many clips are flagged, for what, one example; the report lists them all."""
    counts = Counter(flag for entry in result.flagged for flag in entry["flags"])
    what = ", ".join(f"{n} {validate_audio.DESCRIPTIONS[flag]}" for flag, n in counts.items())
    kept = "kept" if result.status != "failed" else "refused by strict=true"
    return (f"[yellow]flagged {len(result.flagged)} clips[/] ({kept}): {what}; "
            f"e.g. {result.flagged[0]['source']} (all in the report)")


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    dataset = pairs.pop("dataset", None)
    if not dataset:
        raise UsageError("missing dataset=NAME")
    console = make_console(stderr=True)
    try:
        result = ingest(dataset, console=console, **pairs)
    except SourceError as err:
        fail(str(err), code=1)
    except IngestFailed as err:
        summary(err.result, console)
        fail(str(err), code=1)
    except ValueError as err:
        fail(str(err))
    summary(result, console)
    return 0


if __name__ == "__main__":
    run_main(main)
