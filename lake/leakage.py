"""Leakage between the splits of a named split: the same audio, group or near-same vector in two.

    just leakage dataset=demo name=default [group=speaker_id] [backbone=musicnn-mtt layer=... threshold=0.98
                 center=false]

Three checks, each catching one thing and nothing else:
  * identical audio: tracks with the same sha256 in different splits (queries/duplicate_audio_leakage.sql);
  * group: a value of each group column (speaker_id, ...) in different splits (queries/group_leakage.sql);
    by default the columns the split was made with;
  * near-duplicates: pairs of tracks in different splits whose vectors of one backbone have
    cosine >= threshold, found with FAISS (exact inner product over L2-normalised float32;
    `center=true` subtracts the mean vector first). Pairs of identical audio are left to the
    first check.
Writes `reports/<dataset>/leakage-<name>.json` and `.md` and exits 1 when any check finds leakage.
`lake.splits` runs the same checks on a new split before writing it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import Progress

from lake import atomic, catalog, paths, queries
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.embeddings import load
from lake.parts import table_parts
from lake.split_assign import SPLIT_NAMES

PARAMS_KEY = "audiolake.split.params"


@dataclass
class Check:
    name: str                                   # audio | group:<column> | near_duplicates
    title: str
    status: Literal["clean", "leak", "skipped"]
    count: int = 0                              # leaking sha256s / group values / vector pairs
    tracks: int = 0                             # distinct tracks involved
    detail: str = ""
    examples: list[dict] = field(default_factory=list)


@dataclass
class LeakageConfig:
    dataset: str
    name: str = "default"
    group: tuple[str, ...] | None = None        # None: the columns the split was made with
    backbone: str | None = None
    layer: str | None = None
    threshold: float = 0.98
    center: bool = False                        # subtract the mean vector before the cosine
    examples: int = 20

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        paths.check_name("name", self.name)
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold={self.threshold}: cosine threshold must be in (0, 1]")


# ---- the checks: each reads the `splits` and `tracks` views of the connection -------------

def _shortened(rows: list[dict], limit: int) -> list[dict]:
    """The first `limit` findings, each listing at most 20 track ids (a speaker may have thousands)."""
    return [{**r, "track_ids": r["track_ids"][:20]} for r in rows[:limit]]


def duplicate_audio(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str, limit: int = 20) -> Check:
    rows = queries.run_file(con, "duplicate_audio_leakage", dataset=dataset, split_name=split_name).to_pylist()
    return Check("audio", "identical audio (sha256) across splits", "leak" if rows else "clean",
                 count=len(rows), tracks=sum(r["tracks"] for r in rows), examples=_shortened(rows, limit))


def group_leakage(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str, column: str,
                  limit: int = 20) -> Check:
    rows = queries.run_file(con, "group_leakage", dataset=dataset, split_name=split_name,
                            group_column=column).to_pylist()
    return Check(f"group:{column}", f"same {column} across splits", "leak" if rows else "clean",
                 count=len(rows), tracks=sum(r["tracks"] for r in rows), examples=_shortened(rows, limit))


def cross_split_pairs(matrix: np.ndarray, codes: np.ndarray, threshold: float, block: int = 8192,
                      advance: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) of every pair of rows in different splits with cosine >= threshold.

    `matrix` holds L2-normalised float32 rows, `codes` each row's split. Per pair of splits the
    smaller side is indexed (IndexFlatIP: exact, a BLAS GEMM per query block) and the larger
    side range-searched in blocks, so only cross-split products are computed (0.17·N² for
    0.8/0.1/0.1, against N²/2 for a self-join).
    """
    import faiss

    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    # FAISS keeps inner products strictly above the radius; step just below to keep ">=".
    radius = float(np.nextafter(np.float32(threshold), np.float32(-1)))
    found_i, found_j, found_c = [], [], []
    labels = np.unique(codes)
    for pos, a in enumerate(labels):
        for b in labels[pos + 1:]:
            rows_a, rows_b = np.flatnonzero(codes == a), np.flatnonzero(codes == b)
            small, large = (rows_a, rows_b) if len(rows_a) <= len(rows_b) else (rows_b, rows_a)
            index = faiss.IndexFlatIP(matrix.shape[1])
            index.add(matrix[small])
            for start in range(0, len(large), block):
                queries_ = large[start:start + block]
                lims, sims, hits = index.range_search(matrix[queries_], radius)
                keep = sims >= threshold
                found_i.append(np.repeat(queries_, np.diff(lims).astype(np.int64))[keep])
                found_j.append(small[hits[keep]])
                found_c.append(sims[keep])
                if advance:
                    advance(len(queries_) * len(small))
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, c = np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_c)
    return np.minimum(i, j), np.maximum(i, j), c


def near_duplicates(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str, backbone: str,
                    layer: str | None, threshold: float, limit: int = 20, console: Console | None = None,
                    center: bool = False) -> Check:
    assigned = con.sql(
        "SELECT s.track_id, s.split, t.sha256 FROM splits AS s LEFT JOIN tracks AS t "
        "ON t.dataset = s.dataset AND t.track_id = s.track_id "
        "WHERE s.dataset = $dataset AND s.split_name = $split_name",
        params={"dataset": dataset, "split_name": split_name}).to_arrow_table()
    emb = load(dataset, backbone, layer=layer, label=None)
    found = pc.index_in(pa.array(emb.track_ids, pa.string()), value_set=assigned.column("track_id"))
    in_split = found.is_valid().to_numpy(zero_copy_only=False)
    position = found.drop_null().to_numpy().astype(np.int64)
    matrix = emb.matrix[in_split]
    valid = np.isfinite(matrix).all(axis=1) & (np.linalg.norm(matrix, axis=1) > 0)
    matrix, position = matrix[valid], position[valid]
    if center and len(matrix):
        # Many backbones' vectors share a large common direction (non-negative tag scores,
        # log-mel statistics), so any two clips have a raw cosine near 1; centring removes it.
        matrix = matrix - matrix.mean(axis=0)
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    split_of = np.asarray(assigned.column("split").to_pylist(), dtype=object)
    codes = np.array([SPLIT_NAMES.index(s) for s in split_of[position]], dtype=np.int64)
    sizes = np.bincount(codes, minlength=len(SPLIT_NAMES))
    work = int(sizes[0] * sizes[1] + sizes[0] * sizes[2] + sizes[1] * sizes[2])
    started = time.perf_counter()
    with Progress(console=console or make_console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"near-duplicates · {backbone}", total=max(work, 1))
        i, j, cos = cross_split_pairs(matrix, codes, threshold, advance=lambda n: progress.advance(task, n))
    seconds = time.perf_counter() - started
    ids = assigned.column("track_id").to_numpy(zero_copy_only=False)
    # a missing hash is never "the same audio" as another missing one
    shas = np.asarray([h if h is not None else f"\0{k}" for k, h in enumerate(assigned.column("sha256").to_pylist())],
                      dtype=object)
    a, b = position[i], position[j]
    distinct_audio = shas[a] != shas[b]
    a, b, cos = a[distinct_audio], b[distinct_audio], cos[distinct_audio]
    top = np.argsort(-cos, kind="stable")[:limit]
    examples = [{"track_a": ids[a[k]], "split_a": split_of[a[k]], "track_b": ids[b[k]], "split_b": split_of[b[k]],
                 "cosine": round(float(cos[k]), 4)} for k in top]
    missing = len(assigned) - len(np.unique(position))
    involved = len(np.unique(np.r_[a, b]))
    detail = (f"{emb.backbone} layer {emb.layer}, {'centred ' if center else ''}cosine >= {threshold:g}; "
              f"{len(matrix):,} vectors compared in {seconds:.1f} s"
              + (f"; {missing:,} tracks of the split without a usable vector" if missing else "")
              + ("; pairs of identical audio are left to the audio check" if (~distinct_audio).any() else "")
              + ("; over 10% of the vectors have a neighbour in another split at this threshold: "
                 "this backbone's raw cosines run high, try center=true or a higher threshold"
                 if not center and involved > 0.1 * max(len(matrix), 1) else ""))
    return Check("near_duplicates", f"near-duplicate vectors across splits ({emb.backbone})",
                 "leak" if len(cos) else "clean", count=len(cos),
                 tracks=involved, detail=detail, examples=examples)


# ---- the report ---------------------------------------------------------------------------

def split_part(dataset: str, split_name: str) -> Path:
    """Where a named split lives (one part per dataset and name)."""
    return paths.partition_dir("splits", dataset=dataset, split_name=split_name) / "part-000000.parquet"


def split_params(dataset: str, split_name: str) -> dict | None:
    # through the one part listing: a damaged split part is named and set aside, not read
    if split_part(dataset, split_name) not in table_parts("splits", dataset=dataset, split_name=split_name):
        return None
    return json.loads(atomic.read_parquet_metadata(split_part(dataset, split_name)).get(PARAMS_KEY, "{}"))


def run_checks(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str, group: tuple[str, ...],
               backbone: str | None, layer: str | None, threshold: float, limit: int = 20,
               console: Console | None = None, center: bool = False) -> list[Check]:
    checks = [duplicate_audio(con, dataset, split_name, limit)]
    if group:
        checks += [group_leakage(con, dataset, split_name, column, limit) for column in group]
    else:
        checks.append(Check("group", "same group across splits", "skipped", detail="no group= column given"))
    if backbone:
        checks.append(near_duplicates(con, dataset, split_name, backbone, layer, threshold, limit, console, center))
    else:
        checks.append(Check("near_duplicates", "near-duplicate vectors across splits", "skipped",
                            detail="no backbone= given"))
    return checks


def split_counts(con: duckdb.DuckDBPyConnection, dataset: str, split_name: str) -> dict[str, int]:
    rows = con.execute("SELECT split, count(*) FROM splits WHERE dataset = $d AND split_name = $n GROUP BY 1",
                       {"d": dataset, "n": split_name}).fetchall()
    return {s: n for s, n in sorted(rows, key=lambda r: (SPLIT_NAMES + (r[0],)).index(r[0]))}


def _cell(value: object) -> str:
    if isinstance(value, list):
        shown = ", ".join(map(str, value[:6])) + (f", … ({len(value)})" if len(value) > 6 else "")
        return shown
    return str(value).replace("|", "\\|")


def to_markdown(report: dict) -> str:
    lines = [f"# Leakage: {report['dataset']} · split {report['split_name']}", "",
             f"{report['created_at']} · tracks per split: "
             + ", ".join(f"{s} {n:,}" for s, n in report["splits"].items()), "",
             f"**{'LEAKAGE FOUND' if report['leakage'] else 'no leakage found'}**"
             + (f" · {report['note']}" if report.get("note") else ""), "",
             "| check | status | count | tracks | detail |", "|---|---|---:|---:|---|"]
    for c in report["checks"]:
        lines.append(f"| {c['title']} | {c['status']} | {c['count']:,} | {c['tracks']:,} | {c['detail']} |")
    for c in report["checks"]:
        if not c["examples"]:
            continue
        columns = list(c["examples"][0])
        lines += ["", f"## {c['title']}: {c['count']:,} (first {len(c['examples'])})", "",
                  "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(e[k]) for k in columns) + " |" for e in c["examples"]]
    return "\n".join(lines) + "\n"


def write_report(dataset: str, split_name: str, checks: list[Check], splits: dict[str, int],
                 note: str = "") -> tuple[dict, Path, Path]:
    report = {"dataset": dataset, "split_name": split_name,
              "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "splits": splits,
              "leakage": any(c.status == "leak" for c in checks), "note": note,
              "checks": [asdict(c) for c in checks]}
    base = paths.reports_dir(dataset) / f"leakage-{split_name}"
    json_path = atomic.write_json(report, base.with_suffix(".json"))
    md_path = atomic.write_text(to_markdown(report), base.with_suffix(".md"))
    return report, json_path, md_path


def print_summary(checks: list[Check], console: Console) -> None:
    style = {"clean": "[green]clean[/]", "leak": "[bold red]LEAK[/]", "skipped": "[dim]skipped[/]"}
    for c in checks:
        console.print(f"  {c.title}: {style[c.status]}"
                      + (f" · {c.count:,} ({c.tracks:,} tracks)" if c.status == "leak" else "")
                      + (f" [dim]· {c.detail}[/]" if c.detail else ""), highlight=False)
        for e in c.examples[:3]:
            if c.name == "near_duplicates":
                text = f"{e['track_a']} ({e['split_a']}) ~ {e['track_b']} ({e['split_b']}) cosine {e['cosine']}"
            else:
                key = e.get("sha256", e.get("group_value"))
                text = f"{str(key)[:16]}: {', '.join(e['track_ids'][:4])} in {', '.join(e['splits'])}"
            console.print(f"    {text}", highlight=False)


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    cfg = parse_config(LeakageConfig, pairs)
    params = split_params(cfg.dataset, cfg.name)
    con = catalog.connect()
    if params is None:
        known = [r[0] for r in con.execute("SELECT DISTINCT split_name FROM splits WHERE dataset = $d ORDER BY 1",
                                           {"d": cfg.dataset}).fetchall()]
        raise UsageError(f"no split {cfg.name!r} of dataset={cfg.dataset} (splits: {', '.join(known) or 'none'}): "
                         f"make one with just split dataset={cfg.dataset} name={cfg.name}")
    group = tuple(params.get("group", ())) if cfg.group is None else cfg.group
    columns = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE tracks)").fetchall()}
    for column in group:
        if column not in columns:
            raise UsageError(f"group={column}: not a column of tracks")
    console = make_console()
    try:
        checks = run_checks(con, cfg.dataset, cfg.name, group, cfg.backbone, cfg.layer, cfg.threshold,
                            cfg.examples, console, cfg.center)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err), code=1)
    from lake.splits import coverage_problem  # lake.splits imports this module

    # A split that no longer covers its dataset is not "clean", whatever the checks say.
    outdated = coverage_problem(con, cfg.dataset, cfg.name) or ""
    report, json_path, md_path = write_report(cfg.dataset, cfg.name, checks, split_counts(con, cfg.dataset, cfg.name),
                                              outdated)
    console.print(f"leakage of {cfg.dataset} · split {cfg.name}:", highlight=False)
    print_summary(checks, console)
    if outdated:
        console.print(f"[bold red]{outdated}[/]", highlight=False, soft_wrap=True)
    console.print(f"report {md_path}\n       {json_path}", highlight=False)
    return 1 if report["leakage"] or outdated else 0


if __name__ == "__main__":
    run_main(main)
