"""`python -m heads.clips dataset=NAME where=PREDICATE [limit=N] [out=DIR]` — stored clips back
to files, to listen to or to hand to `just score`.

    python -m heads.clips dataset=demo where="group_id = 'demo_song_0000' AND rank IN (1, 4)"

Writes each selected clip's original bytes (read by byte range from its shard) as
`<out>/<track_id>.<format>` (default out: data/reports/<dataset>/clips) and prints one path per
line, in track_id order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from embed.loader import Clip
from ingest.shards import read_member
from lake import atomic, catalog, paths, queries
from lake.cli import UsageError, key_values, parse_config, run_main
from lake.errors import one_line


@dataclass
class ClipsConfig:
    dataset: str
    where: str = ""
    limit: int = 10
    out: Path | None = None

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        if self.where.strip():
            queries.predicate(self.where)
        if not self.limit >= 1:
            raise ValueError(f"limit={self.limit}: must be 1 or more")


def export(cfg: ClipsConfig) -> list[Path]:
    where = f"AND {queries.predicate(cfg.where)}" if cfg.where.strip() else ""
    try:
        rows = catalog.connect().execute(
            f'SELECT track_id, sha256, shard, "offset", nbytes, duration_s, format FROM tracks '
            f"WHERE dataset = $dataset {where} ORDER BY track_id LIMIT {int(cfg.limit)}",
            {"dataset": cfg.dataset}).fetchall()
    except duckdb.Error as err:
        raise UsageError(f"where={cfg.where!r}: DuckDB says: {one_line(err)}") from None
    if not rows:
        raise UsageError(f"no clips of dataset {cfg.dataset}" + (f" where {cfg.where}" if cfg.where else ""))
    out = cfg.out or paths.reports_dir(cfg.dataset) / "clips"
    written = []
    for *clip, fmt in rows:
        clip = Clip(*clip)
        name = clip.track_id.replace("/", "_") + f".{fmt}"
        with atomic.atomic_path(out / name) as tmp:
            tmp.write_bytes(read_member(paths.root() / clip.shard, clip.offset, clip.nbytes))
        written.append(out / name)
    return written


def main(argv: list[str]) -> int:
    cfg = parse_config(ClipsConfig, key_values(argv))
    for path in export(cfg):
        print(path)
    return 0


if __name__ == "__main__":
    run_main(main)
