"""What `just validate` measures and judges: a dataset's tracks, and each backbone's vectors.

Gathering is one pass over `tracks` (SQL) and, per backbone, one read of each stored layer's
matrix (`lake.embeddings.load`, numpy checks on the whole matrix at once). Judging turns the
numbers into `Check`s, each with a level: an error means the data is not fit to train on as
it is, a warning means a person should look, info is context. The checks read what is stored,
whatever wrote it: the engine never writes a NaN vector, but another tool's part may.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import numpy as np
import polars as pl

from lake import embeddings, queries
from lake import validate_audio
from lake.vectors import VectorReadError

Level = Literal["error", "warning", "info"]
CLASS_COLUMNS = ("label", "culture", "affect_label", "speaker_id", "split")
TARGET_COLUMNS = ("label", "culture", "affect_label")  # columns heads train on: balance matters
QUANTILES = {"min": 0, "p5": 5, "p25": 25, "median": 50, "p75": 75, "p95": 95, "max": 100}
IMBALANCE_RATIO = 10.0
TINY_CLASS = 5
EXAMPLES = 10
PCA_POINTS = 20_000  # a scatter of more points says nothing more and draws slowly


@dataclass
class Check:
    name: str
    level: Level
    passed: bool
    detail: str
    examples: list[str] = field(default_factory=list)


@dataclass
class BackboneProfile:
    backbone: str
    layers: list[str]
    layer: str                       # the layer plotted and summarised
    coverage: dict[str, Any]         # a row of queries/embedding_coverage.sql
    dims: dict[int, int]             # vector length → vectors
    expected_dim: int | None         # from the backbones table
    missing_ids: list[str]
    nan_ids: list[str]               # "track_id (layer)"
    zero_ids: list[str]
    norms: np.ndarray                # of the finite rows of `layer`
    pca: np.ndarray | None           # [n, 2]
    pca_variance: list[float]
    pca_labels: dict[str, np.ndarray]  # column → value per PCA point


@dataclass
class TracksProfile:
    clips: int
    counts: dict[str, list[dict[str, Any]]]   # column → rows of queries/class_balance.sql
    missing: dict[str, int]                   # column → missing values, for columns with any value
    empty_columns: list[str]                  # columns with no value at all in this dataset
    durations: np.ndarray
    sample_rates: dict[str, int]              # rate in Hz (as text) → clips
    duplicate_ids: list[tuple[str, int]]
    duplicate_audio: list[list[str]]
    named_splits: dict[str, dict[str, int]]
    unlabelled: list[str]                     # first few clips without a label
    audio_flags: dict[str, list[str]] = field(default_factory=dict)  # flag → track ids (validate_audio)
    unmeasured: int = 0                       # clips ingested before levels were measured
    peak_db: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rms_db: np.ndarray = field(default_factory=lambda: np.zeros(0))


def quantiles(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    return {name: float(q) for name, q in zip(QUANTILES, np.percentile(values, list(QUANTILES.values())))}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def profile_tracks(con: duckdb.DuckDBPyConnection, dataset: str) -> TracksProfile:
    params = {"dataset": dataset}
    clips = con.execute("SELECT count(*) FROM tracks WHERE dataset = $dataset", params).fetchall()[0][0]
    balance = queries.run_file(con, "class_balance", dataset=dataset, column="all").to_pylist()
    counts: dict[str, list[dict[str, Any]]] = {c: [] for c in CLASS_COLUMNS}
    for row in balance:
        counts[row["column_name"]].append(row)
    counts = {c: rows for c, rows in counts.items() if rows}
    # Missing values of every column the view has (other datasets' extra columns included,
    # which is why a column with no value at all here is listed apart rather than as missing).
    columns = [(name, kind) for name, kind, *_ in con.execute("DESCRIBE tracks").fetchall()
               if name != "dataset"]
    terms = [f"count(*) FILTER (WHERE {_quote(n)} IS NULL"
             + (f" OR {_quote(n)} = ''" if k == "VARCHAR" else "") + ")" for n, k in columns]
    missing_row = con.execute(f"SELECT {', '.join(terms)} FROM tracks WHERE dataset = $dataset", params).fetchall()[0]
    missing = {n: int(m) for (n, _), m in zip(columns, missing_row) if m < clips}
    empty = [n for (n, _), m in zip(columns, missing_row) if clips and m == clips]
    audio = con.sql("SELECT duration_s, sample_rate FROM tracks WHERE dataset = $dataset",
                    params=params).to_arrow_table()
    durations = audio.column("duration_s").to_numpy(zero_copy_only=False).astype(np.float64)
    rates = con.execute("SELECT sample_rate, count(*) FROM tracks WHERE dataset = $dataset "
                        "GROUP BY 1 ORDER BY 2 DESC, 1", params).fetchall()
    duplicate_ids = con.execute(
        "SELECT track_id, count(*) FROM tracks WHERE dataset = $dataset GROUP BY 1 HAVING count(*) > 1 "
        "ORDER BY 2 DESC, 1", params).fetchall()
    # Same bytes under different ids; a repeated id is the other check's business.
    duplicate_audio = [ids for (ids,) in con.execute(
        "SELECT list(DISTINCT track_id ORDER BY track_id) FROM tracks WHERE dataset = $dataset "
        "GROUP BY sha256 HAVING count(DISTINCT track_id) > 1 ORDER BY count(DISTINCT track_id) DESC, 1",
        params).fetchall()]
    named: dict[str, dict[str, int]] = {}
    for name, split, n in con.execute(
            "SELECT split_name, split, count(*) FROM splits WHERE dataset = $dataset GROUP BY ALL ORDER BY 1, 2",
            params).fetchall():
        named.setdefault(name, {})[split] = n
    unlabelled = [t for (t,) in con.execute(
        "SELECT track_id FROM tracks WHERE dataset = $dataset AND coalesce(label, '') = '' ORDER BY 1 LIMIT 10",
        params).fetchall()]
    sample_rates = {("missing" if r is None else str(r)): int(n) for r, n in rates}
    profile = TracksProfile(clips, counts, missing, empty, durations, sample_rates, duplicate_ids, duplicate_audio,
                            named, unlabelled)
    _audio_levels(con, dataset, {name for name, _ in columns}, profile)
    return profile


def _audio_levels(con: duckdb.DuckDBPyConnection, dataset: str, columns: set[str], tp: TracksProfile) -> None:
    """Flags silent, flat and short clips from the levels ingest stored: no audio is decoded."""
    levels = "peak_db, rms_db" if {"peak_db", "rms_db"} <= columns else "NULL::DOUBLE AS peak_db, NULL::DOUBLE AS rms_db"
    table = con.sql(f"SELECT track_id, {levels}, duration_s FROM tracks WHERE dataset = $dataset ORDER BY track_id",
                    params={"dataset": dataset}).to_arrow_table()
    ids, peak, rms, duration = (table.column(i).to_numpy(zero_copy_only=False) for i in range(4))
    peak, rms = peak.astype(np.float64), rms.astype(np.float64)
    masks = validate_audio.flags(peak, rms, duration.astype(np.float64))
    tp.audio_flags = {name: [str(t) for t in ids[mask]] for name, mask in masks.items()}
    tp.unmeasured = int(np.isnan(peak).sum())
    tp.peak_db, tp.rms_db = peak[np.isfinite(peak)], rms[np.isfinite(rms)]


def coverage_rows(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, dict[str, Any]]:
    return {row["backbone"]: row for row in queries.run_file(con, "embedding_coverage", dataset=dataset).to_pylist()}


def _matrix(con: duckdb.DuckDBPyConnection, dataset: str, backbone: str, layer: str,
            dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Track ids and the [n, dim] matrix of one layer. The fast reader refuses parts of
    different widths; then DuckDB reads the rows of the majority width (the others are
    reported by the dims check)."""
    try:
        loaded = embeddings.load(dataset, backbone, layer=layer, label=None, stale="skip")
        if loaded.matrix.shape[1] == dim:
            return loaded.track_ids, loaded.matrix
    except VectorReadError:
        pass
    table = con.sql("SELECT track_id, emb FROM embeddings WHERE dataset = $dataset AND backbone = $backbone "
                    "AND layer = $layer AND len(emb) = $dim",
                    params={"dataset": dataset, "backbone": backbone, "layer": layer, "dim": dim}).to_arrow_table()
    flat = table.column("emb").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return (table.column("track_id").to_numpy(zero_copy_only=False),
            np.asarray(flat, dtype=np.float32).reshape(len(table), dim))


def _pca(matrix: np.ndarray, seed: int = 0) -> tuple[np.ndarray | None, list[float], np.ndarray]:
    from sklearn.decomposition import PCA

    rows = np.arange(len(matrix))
    if len(rows) > PCA_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, PCA_POINTS, replace=False))
    if len(rows) < 3 or matrix.shape[1] < 2:
        return None, [], rows
    pca = PCA(n_components=2, random_state=seed)
    return pca.fit_transform(matrix[rows]), [float(v) for v in pca.explained_variance_ratio_], rows


def profile_backbone(con: duckdb.DuckDBPyConnection, dataset: str, backbone: str, layer: str | None,
                     coverage: dict[str, Any] | None) -> BackboneProfile:
    params = {"dataset": dataset, "backbone": backbone}
    files = embeddings.parts(dataset, backbone)
    missing_ids = [t for (t,) in con.execute(
        "SELECT DISTINCT track_id FROM tracks WHERE dataset = $dataset AND track_id NOT IN "
        "(SELECT track_id FROM embeddings WHERE dataset = $dataset AND backbone = $backbone) ORDER BY 1",
        params).fetchall()]
    if coverage is None:  # nothing stored for this backbone in this dataset
        clips = con.execute("SELECT count(DISTINCT track_id) FROM tracks WHERE dataset = $dataset",
                            {"dataset": dataset}).fetchall()[0][0]
        coverage = {"backbone": backbone, "clips": clips, "with_vectors": 0, "without_vectors": clips,
                    "coverage": 0.0, "stale_vectors": 0, "orphan_vectors": 0}
    expected = con.execute("SELECT max(dim) FROM backbones WHERE backbone = $backbone",
                           {"backbone": backbone}).fetchall()[0][0]
    dims = dict(con.execute("SELECT len(emb), count(*) FROM embeddings WHERE dataset = $dataset "
                            "AND backbone = $backbone GROUP BY 1 ORDER BY 2 DESC", params).fetchall())
    stored = embeddings.stored_layers(files) if files else []
    if layer is not None and stored:
        stored = [embeddings.choose_layer(layer, stored, f"embeddings of dataset={dataset} backbone={backbone}")]
    # The layer a head would take by default: "last" where stored, else the deepest listed.
    shown = "last" if "last" in stored else (stored[-1] if stored else "")
    nan_ids: list[str] = []
    zero_ids: list[str] = []
    norms, pca, variance, labels = np.zeros(0), None, [], {}
    majority = next(iter(dims), expected)
    for each in stored:
        ids, matrix = _matrix(con, dataset, backbone, each, majority)
        finite = np.isfinite(matrix).all(axis=1)
        row_norms = np.linalg.norm(np.where(finite[:, None], matrix, 0), axis=1)
        zero = finite & (row_norms == 0)
        suffix = f" ({each})" if len(stored) > 1 else ""
        nan_ids += [f"{t}{suffix}" for t in ids[~finite]]
        zero_ids += [f"{t}{suffix}" for t in ids[zero]]
        if each == shown:
            norms = row_norms[finite]
            usable = finite & ~zero
            pca, variance, rows = _pca(matrix[usable])
            labels = point_labels(con, dataset, ids[usable][rows]) if pca is not None else {}
    return BackboneProfile(backbone, stored, shown, coverage, dims, expected, missing_ids,
                           nan_ids, zero_ids, norms, pca, variance, labels)


def point_labels(con: duckdb.DuckDBPyConnection, dataset: str, ids: np.ndarray) -> dict[str, np.ndarray]:
    """label and culture of each id, in order: one join, no per-row Python."""
    meta = pl.from_arrow(con.sql("SELECT track_id, label, culture FROM tracks WHERE dataset = $dataset",
                                 params={"dataset": dataset}).to_arrow_table()).unique("track_id", keep="first")
    joined = pl.DataFrame({"track_id": ids.astype(str)}).join(meta, on="track_id", how="left", maintain_order="left")
    return {c: joined[c].fill_null("(missing)").to_numpy() for c in ("label", "culture")
            if joined[c].null_count() < len(joined)}


def _some(items: list, n: int = EXAMPLES) -> str:
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", … ({len(items) - n} more)" if len(items) > n else "")


def track_checks(tp: TracksProfile) -> list[Check]:
    checks = [Check("clips", "info", True, f"{tp.clips:,} clips, {np.nansum(tp.durations) / 3600:.2f} h of audio")]
    checks.append(Check(
        "duplicate_track_id", "error", not tp.duplicate_ids,
        f"{len(tp.duplicate_ids)} track id(s) used more than once" if tp.duplicate_ids else "every track_id is unique",
        [f"{t} ×{n}" for t, n in tp.duplicate_ids[:EXAMPLES]]))
    dup_clips = sum(len(g) for g in tp.duplicate_audio)
    checks.append(Check(
        "duplicate_audio", "warning", not tp.duplicate_audio,
        f"{len(tp.duplicate_audio)} group(s) of identical audio (same sha256), {dup_clips} clips"
        if tp.duplicate_audio else "no two clips have the same audio bytes",
        [" = ".join(g[:4]) + (" …" if len(g) > 4 else "") for g in tp.duplicate_audio[:EXAMPLES]]))
    label_missing = tp.missing.get("label")
    if "label" in tp.empty_columns or "label" not in tp.counts:
        checks.append(Check("missing_labels", "warning", False, "no clip has a label"))
    else:
        checks.append(Check("missing_labels", "warning", not label_missing,
                            f"{label_missing} of {tp.clips} clips have no label" if label_missing
                            else "every clip has a label", tp.unlabelled))
    for column in TARGET_COLUMNS:
        classes = [r for r in tp.counts.get(column, []) if r["value"] is not None]
        if not classes:
            continue
        big, small = classes[0], classes[-1]
        ratio = big["clips"] / small["clips"]
        checks.append(Check(
            f"class_imbalance:{column}", "warning", ratio <= IMBALANCE_RATIO,
            f"one class only ({big['value']})" if len(classes) == 1 else
            f"{len(classes)} classes; largest/smallest = {ratio:.1f} ({big['value']} {big['clips']}, "
            f"{small['value']} {small['clips']}), limit {IMBALANCE_RATIO:g}"))
        tiny = [r for r in classes if r["clips"] < TINY_CLASS]
        checks.append(Check(
            f"tiny_classes:{column}", "warning", not tiny,
            f"{len(tiny)} class(es) with fewer than {TINY_CLASS} clips" if tiny
            else f"every class has at least {TINY_CLASS} clips",
            [f"{r['value']} ({r['clips']})" for r in tiny[:EXAMPLES]]))
    checks += audio_checks(tp)
    q = quantiles(tp.durations)
    if q:
        checks.append(Check("durations", "info", True,
                            f"{q['min']:.2f}–{q['max']:.2f} s, median {q['median']:.2f} s"))
    rates = ", ".join(f"{r} Hz ×{n}" for r, n in list(tp.sample_rates.items())[:4])
    checks.append(Check("sample_rates", "info", True, f"{len(tp.sample_rates)} rate(s): {rates}"))
    with_missing = {c: n for c, n in tp.missing.items() if n}
    checks.append(Check("missing_values", "info", True,
                        f"{len(with_missing)} column(s) have missing values" if with_missing
                        else "no column has missing values",
                        [f"{c} {n}" for c, n in sorted(with_missing.items(), key=lambda kv: -kv[1])[:EXAMPLES]]))
    return checks


AUDIO_CHECKS = {"silent": "silent_clips", "flat": "low_dynamic_range", "short": "short_clips"}
_RULES = {
    "silent": f"peak below {validate_audio.SILENT_PEAK_DB:g} dBFS",
    "flat": f"peak less than {validate_audio.FLAT_CREST_DB:g} dB above RMS",
    "short": f"under {validate_audio.SHORT_SECONDS:g} s",
}


def audio_checks(tp: TracksProfile) -> list[Check]:
    checks = []
    for flag, name in AUDIO_CHECKS.items():
        ids = tp.audio_flags.get(flag, [])
        what = validate_audio.DESCRIPTIONS[flag]
        checks.append(Check(name, "warning", not ids,
                            f"{len(ids)} clip(s): {what} ({_RULES[flag]})" if ids else f"no clip: {what} ({_RULES[flag]})",
                            ids[:EXAMPLES]))
    if tp.unmeasured:
        checks.append(Check("audio_levels", "warning", False,
                            f"{tp.unmeasured} of {tp.clips} clips have no stored level (ingested before levels were "
                            "measured), so silence and dynamic range are unchecked for them: re-ingest with force=true"))
    return checks


def backbone_checks(bp: BackboneProfile, requested: bool) -> list[Check]:
    b, cov = bp.backbone, bp.coverage
    checks = []
    # A clip whose only vector was made from audio that has since changed has no vector a
    # reader gets (the views and lake.embeddings.load refuse it): it is not covered.
    uncovered = cov["without_vectors"] + cov["stale_vectors"]
    if uncovered:
        how = "no vectors stored" if not (cov["with_vectors"] or cov["stale_vectors"]) \
            else f"{uncovered} of {cov['clips']} clips"
        stale = f", {cov['stale_vectors']} of them only from audio that has since changed" if cov["stale_vectors"] else ""
        checks.append(Check(f"coverage:{b}", "error" if requested else "warning", False,
                            f"{how} without a vector of their current audio{stale} (coverage {cov['coverage']:.1%})",
                            bp.missing_ids[:EXAMPLES]))
    else:
        checks.append(Check(f"coverage:{b}", "error", True, f"all {cov['clips']} clips have a vector"))
    if cov["stale_vectors"] or cov["orphan_vectors"]:
        checks.append(Check(f"stale_vectors:{b}", "warning", False,
                            f"{cov['stale_vectors']} vectors from other audio than the clip's now, "
                            f"{cov['orphan_vectors']} of track ids not in tracks: re-run just embed"))
    if not cov["with_vectors"]:
        return checks  # nothing current: the vector checks below have nothing to look at
    dims = bp.dims
    bad_dims = len(dims) > 1 or (bp.expected_dim is not None and dims and next(iter(dims)) != bp.expected_dim)
    dims_text = ", ".join(f"{d}×{n}" for d, n in dims.items()) or "none"
    checks.append(Check(f"dims:{b}", "error", not bad_dims,
                        f"vector lengths {dims_text} (registered dim {bp.expected_dim})" if bad_dims
                        else f"all vectors have {next(iter(dims), bp.expected_dim)} dims"))
    checks.append(Check(f"nan_inf:{b}", "error", not bp.nan_ids,
                        f"{len(bp.nan_ids)} vector(s) hold NaN or Inf" if bp.nan_ids else "every value is finite",
                        bp.nan_ids[:EXAMPLES]))
    checks.append(Check(f"zero_norm:{b}", "error", not bp.zero_ids,
                        f"{len(bp.zero_ids)} vector(s) are all zeros" if bp.zero_ids else "no all-zero vector",
                        bp.zero_ids[:EXAMPLES]))
    q = quantiles(bp.norms)
    if q:
        checks.append(Check(f"norms:{b}", "info", True,
                            f"layer {bp.layer}: median {q['median']:.3g}, p5–p95 {q['p5']:.3g}–{q['p95']:.3g}"))
    if bp.pca_variance:
        checks.append(Check(f"pca:{b}", "info", True,
                            f"2 components explain {sum(bp.pca_variance):.0%} of the variance"))
    return checks
