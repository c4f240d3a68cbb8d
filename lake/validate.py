"""`just validate dataset=NAME [backbone=NAME[,NAME2]] [layer=...]` — is this data fit to train on?

Profiles a dataset's `tracks` (classes, durations, sample rates, missing values, duplicate ids
and audio, silent/flat/very short clips from the levels ingest stored) and each backbone's vectors (coverage, NaN/Inf, zero norms, widths, norms, a 2-D
PCA), judges them with levelled checks (`lake.validate_checks`), and writes
`reports/<dataset>/profile.json`, `profile.md` (verdict first, then the checks, then the
distributions with their plots) and the PNGs. Without `backbone=` every backbone embedded for
the dataset is profiled. Exit code 1 when an error-level check fails, so CI can gate on it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from lake import atomic, catalog, paths
from lake import validate_checks as vc
from lake import validate_plots as plots
from lake.cli import fail, key_values, make_console, parse_config, run_main

MAX_IDS = 1000  # ids listed per problem in profile.json (the counts are always complete)
MD_CLASSES = 40  # values listed per class column in profile.md
LEVELS = ["error", "warning", "info"]


@dataclass
class ValidateConfig:
    dataset: str
    backbone: tuple[str, ...] = ()   # empty: every backbone embedded for the dataset
    layer: str | None = None         # empty: integrity checks on every stored layer, plots on the last

    def __post_init__(self) -> None:
        paths.check_name("dataset", self.dataset)
        for name in self.backbone:
            paths.check_name("backbone", name)


@dataclass
class Report:
    dataset: str
    tracks: vc.TracksProfile
    backbones: list[vc.BackboneProfile]
    checks: list[vc.Check]
    plots: dict[str, str] = field(default_factory=dict)   # what → file name beside profile.md
    directory: Path | None = None

    @property
    def errors(self) -> list[vc.Check]:
        return [c for c in self.checks if c.level == "error" and not c.passed]

    @property
    def warnings(self) -> list[vc.Check]:
        return [c for c in self.checks if c.level == "warning" and not c.passed]

    def verdict(self) -> str:
        if self.errors:
            return (f"NOT fit to train: {len(self.errors)} error-level check(s) fail "
                    f"({', '.join(c.name for c in self.errors)}); fix them first")
        if self.warnings:
            return (f"fit to train, with {len(self.warnings)} warning(s) "
                    f"({', '.join(c.name for c in self.warnings)}): read them before trusting results")
        return "fit to train: every check passes"


class ValidateError(Exception):
    """Nothing to validate (no such dataset), or a layer that is not stored."""


def validate(cfg: ValidateConfig, console: Console | None = None) -> Report:
    console = console or make_console(stderr=True)
    con = catalog.connect()
    with Progress(TextColumn("validate {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"{cfg.dataset} · tracks", total=None)
        tp = vc.profile_tracks(con, cfg.dataset)
        if not tp.clips:
            raise ValidateError(f"dataset {cfg.dataset!r} has no tracks: ingest it first (just ingest dataset={cfg.dataset} ...)")
        coverage = vc.coverage_rows(con, cfg.dataset)
        names = list(cfg.backbone) or sorted(coverage)
        progress.update(task, total=2 + len(names), completed=1)
        profiles = []
        for name in names:
            progress.update(task, description=f"{cfg.dataset} · {name}")
            try:
                profiles.append(vc.profile_backbone(con, cfg.dataset, name, cfg.layer, coverage.get(name)))
            except ValueError as err:  # a layer that is not stored
                raise ValidateError(str(err)) from None
            progress.advance(task)
        checks = vc.track_checks(tp)
        if not names:
            checks.append(vc.Check("embeddings", "warning", False,
                                   f"no backbone embedded yet: just embed dataset={cfg.dataset} backbone=NAME"))
        for bp in profiles:
            checks += vc.backbone_checks(bp, requested=bool(cfg.backbone))
        report = Report(cfg.dataset, tp, profiles, checks)
        progress.update(task, description=f"{cfg.dataset} · plots")
        write(report)
        progress.advance(task)
    return report


def write(report: Report) -> Path:
    directory = paths.reports_dir(report.dataset)
    directory.mkdir(parents=True, exist_ok=True)
    made = {"audio": plots.audio(report.tracks, directory / "audio.png"),
            "classes": plots.classes(report.tracks, directory / "classes.png")}
    for bp in report.backbones:
        if len(bp.norms):
            made[f"norms:{bp.backbone}"] = plots.norms(bp, directory / f"norms_{bp.backbone}.png")
        made[f"pca:{bp.backbone}"] = plots.pca(bp, directory / f"pca_{bp.backbone}.png")
    report.plots = {k: p.name for k, p in made.items() if p is not None}
    report.directory = directory
    atomic.write_json(to_json(report), directory / "profile.json")
    atomic.write_text(to_markdown(report), directory / "profile.md")
    return directory


def to_json(report: Report) -> dict:
    tp = report.tracks
    return {
        "dataset": report.dataset,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdict": report.verdict(),
        "fit_to_train": not report.errors,
        "checks": [asdict(c) for c in report.checks],
        "clips": tp.clips,
        "counts": {col: {("(missing)" if r["value"] is None else r["value"]): r["clips"] for r in rows}
                   for col, rows in tp.counts.items()},
        "missing": tp.missing,
        "empty_columns": tp.empty_columns,
        "duration_s": vc.quantiles(tp.durations),
        "peak_db": vc.quantiles(tp.peak_db),
        "rms_db": vc.quantiles(tp.rms_db),
        "audio_flags": {flag: ids[:MAX_IDS] for flag, ids in tp.audio_flags.items()},
        "levels_unmeasured": tp.unmeasured,
        "sample_rates": tp.sample_rates,
        "duplicate_track_ids": dict(tp.duplicate_ids[:MAX_IDS]),
        "duplicate_audio": tp.duplicate_audio[:MAX_IDS],
        "named_splits": tp.named_splits,
        "backbones": {bp.backbone: {
            "layers": bp.layers, "layer": bp.layer, "coverage": bp.coverage,
            "dims": {str(d): n for d, n in bp.dims.items()}, "registered_dim": bp.expected_dim,
            "without_vectors": bp.missing_ids[:MAX_IDS], "nan_inf": bp.nan_ids[:MAX_IDS],
            "zero_norm": bp.zero_ids[:MAX_IDS], "norm": vc.quantiles(bp.norms),
            "pca_explained_variance": bp.pca_variance,
        } for bp in report.backbones},
        "plots": report.plots,
    }


def _table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def _quantiles_table(what: str, q: dict[str, float], fmt: str) -> str:
    return _table(["", *vc.QUANTILES], [[what, *(fmt.format(q[k]) for k in vc.QUANTILES)]])


def to_markdown(report: Report) -> str:
    """Blocks read top to bottom: verdict, checks, classes, audio, missing, duplicates, vectors."""
    tp = report.tracks
    mark = "❌" if report.errors else ("⚠️" if report.warnings else "✅")
    backbones = ", ".join(f"{bp.backbone} (layer {bp.layer})" for bp in report.backbones) or "none"
    hours = float(tp.durations[tp.durations == tp.durations].sum()) / 3600  # NaN-safe sum
    blocks = [
        f"# Data profile: {report.dataset}",
        f"**{mark} Verdict: {report.verdict()}.**",
        (f"{tp.clips:,} clips · {hours:.2f} h · backbones: {backbones} · "
         f"written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"),
        "## Checks",
        ("An error means the data is not fit to train on as it is; a warning asks a person to look; "
         "info is context. Failing checks come first; examples name the clips."),
        _table(["check", "level", "status", "detail", "examples"],
               [[c.name, c.level, "pass" if c.passed else "**FAIL**", c.detail, ", ".join(c.examples[:5])]
                for c in sorted(report.checks, key=lambda c: (c.passed, LEVELS.index(c.level)))]),
        "## Classes",
    ]
    for column, rows in tp.counts.items():
        shown = rows[:MD_CLASSES]
        blocks.append(f"### {column}")
        blocks.append(_table([column, "clips", "share"],
                             [["*(missing)*" if r["value"] is None else r["value"], r["clips"], f"{r['share']:.1%}"]
                              for r in shown]))
        if len(rows) > len(shown):
            blocks.append(f"…and {len(rows) - len(shown)} more values (profile.json lists them all).")
    if "classes" in report.plots:
        blocks.append(f"![clips per class]({report.plots['classes']})")
    if tp.named_splits:
        names = sorted({s for counts in tp.named_splits.values() for s in counts})
        blocks += ["### named splits (table `splits`)",
                   _table(["split_name", *names], [[n, *(c.get(s, 0) for s in names)]
                                                   for n, c in tp.named_splits.items()])]
    blocks.append("## Audio")
    q = vc.quantiles(tp.durations)
    if q:
        blocks.append(_quantiles_table("duration (s)", q, "{:.2f}"))
    for what, values in (("peak (dBFS)", tp.peak_db), ("RMS (dBFS)", tp.rms_db)):
        if len(values):
            blocks.append(_quantiles_table(what, vc.quantiles(values), "{:.1f}"))
    flagged = [[vc.AUDIO_CHECKS[flag], len(ids), ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")]
               for flag, ids in tp.audio_flags.items() if ids]
    if flagged:
        blocks.append(_table(["flag (kept, look at them)", "clips", "e.g."], flagged))
    blocks += [_table(["sample rate (Hz)", "clips"], [[r, n] for r, n in tp.sample_rates.items()]),
               f"![durations and sample rates]({report.plots['audio']})", "## Missing values"]
    with_missing = [[c, n, f"{n / tp.clips:.1%}"] for c, n in tp.missing.items() if n]
    blocks.append(_table(["column", "missing", "share"], with_missing) if with_missing
                  else "No column has missing values.")
    if tp.empty_columns:
        blocks.append(f"Columns with no value at all in this dataset: {', '.join(tp.empty_columns)}.")
    dup_ids = ", ".join(f"{t} ×{n}" for t, n in tp.duplicate_ids[:5])
    lines = [f"- track ids used more than once: {len(tp.duplicate_ids)}" + (f" (e.g. {dup_ids})" if dup_ids else ""),
             f"- groups of identical audio (same sha256): {len(tp.duplicate_audio)}"]
    lines += [f"  - {' = '.join(g[:6])}{' …' if len(g) > 6 else ''}" for g in tp.duplicate_audio[:10]]
    blocks += ["## Duplicates", "\n".join(lines)]
    for bp in report.backbones:
        blocks += backbone_markdown(bp, report.plots)
    return "\n\n".join(blocks) + "\n"


def backbone_markdown(bp: vc.BackboneProfile, made: dict[str, str]) -> list[str]:
    cov = bp.coverage
    dims = ", ".join(f"{d} ×{n}" for d, n in bp.dims.items()) or "none"
    blocks = [f"## Backbone {bp.backbone}",
              (f"Layers stored: {', '.join(bp.layers) or 'none'}; summarised and plotted: {bp.layer or '-'}. "
               f"Vector lengths: {dims} (registered dim: {bp.expected_dim})."),
              _table(["clips", "with vectors", "without", "coverage", "stale", "orphan"],
                     [[cov["clips"], cov["with_vectors"], cov["without_vectors"], f"{cov['coverage']:.1%}",
                       cov["stale_vectors"], cov["orphan_vectors"]]])]
    q = vc.quantiles(bp.norms)
    if q:
        blocks.append(_quantiles_table("L2 norm", q, "{:.3g}"))
    if f"norms:{bp.backbone}" in made:
        blocks.append(f"![norms of {bp.backbone}]({made[f'norms:{bp.backbone}']})")
    if f"pca:{bp.backbone}" in made:
        blocks += [(f"PCA to 2 components ({sum(bp.pca_variance):.0%} of the variance): do the labels form "
                    "groups, and does culture separate more than the label does?"),
                   f"![PCA of {bp.backbone}]({made[f'pca:{bp.backbone}']})"]
    return blocks


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(report: Report, console: Console) -> None:
    table = Table(title=f"validate {report.dataset}", header_style="bold", show_lines=False)
    for name in ("check", "level", "status", "detail"):
        table.add_column(name, overflow="fold")
    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    for c in report.checks:
        status = "[green]pass[/]" if c.passed else f"[bold {colours[c.level]}]FAIL[/]"
        detail = c.detail + (f"\n[dim]e.g. {', '.join(c.examples[:3])}[/]" if c.examples and not c.passed else "")
        table.add_row(c.name, f"[{colours[c.level]}]{c.level}[/]", status, detail)
    console.print(table)
    colour = "red" if report.errors else ("yellow" if report.warnings else "green")
    console.print(f"[bold {colour}]{report.dataset}: {report.verdict()}[/]")
    directory = report.directory or paths.reports_dir(report.dataset)
    console.print(f"wrote {_shown(directory / 'profile.md')}, profile.json and {len(report.plots)} plot(s) "
                  f"({', '.join(report.plots.values())})", highlight=False)


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    cfg = parse_config(ValidateConfig, pairs)
    try:
        report = validate(cfg)
    except ValidateError as err:
        fail(str(err), code=1)
    summary(report, make_console())
    return 1 if report.errors else 0


if __name__ == "__main__":
    run_main(main)
