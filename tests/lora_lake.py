"""A tiny labelled lake of real shards for the LoRA tests and the demo line: two classes of tones."""
from __future__ import annotations

from pathlib import Path

from conftest import encode, tone
from heads.testing import write_split
from ingest.api import ingest
from lake import catalog


def tone_lake(folder: Path, dataset: str = "tones", per_class: int = 8, seconds: float = 0.4) -> list[str]:
    """`per_class` clips of a low and a high tone (labels from sub-folders), split train/val/test
    in every class; returns the track ids."""
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        for i in range(per_class):
            path = folder / label / f"{label}{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode(tone(seconds, 16000, freq=freq * (1 + 0.05 * i), seed=i), 16000, "wav"))
    ingest(dataset, source="folder", path=folder, shard_max_count=5, workers=1)
    rows = catalog.connect().sql(f"SELECT track_id, label FROM tracks WHERE dataset = '{dataset}' "
                                 "ORDER BY label, track_id").fetchall()
    assignment, seen = {}, {}
    for track_id, label in rows:
        n = seen[label] = seen.get(label, -1) + 1
        assignment[track_id] = {1: "val", 2: "test"}.get(n % 5, "train")
    write_split(dataset, "default", assignment)
    catalog.refresh()
    return [r[0] for r in rows]
