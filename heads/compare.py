"""`just compare dataset=NAME head=HEAD [target=COL] [split=NAME] [format=table|md]`

Seed 002's table, for any head, from the runs table: one row per backbone (or fused
backbones) × layer × variant, the latest run, with the headline metrics the head declared
(heads/protocol.py): the probe's accuracy, balanced accuracy, macro-F1, ROC-AUC and one
accuracy column per class; the scorer's Spearman, pairwise accuracy, NDCG, MAE and
speaker-probe accuracy. "± std" where the run averaged several seeds; the best value of each
column is bold. The rows are `queries/compare_backbones.sql`. A run that ranks several methods on
the same pairs (dcas: the model, its ablation rows, the baselines) adds a methods table: each
metric with its bootstrap 95% CI and each method's paired-test p-value against the model
(heads/compare_methods.py). Also written as Markdown to
`data/reports/<dataset>/compare-<head>-<target or all>.md`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
from rich.markup import escape
from rich.table import Table

from heads import compare_methods
from lake import atomic, catalog, paths, queries
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.errors import one_line


@dataclass
class CompareConfig:
    dataset: str
    head: str = "probe"
    target: str = ""                 # what the head predicted; empty: every target
    split: str = ""                  # a split name; empty: the latest runs on any split
    format: Literal["table", "md"] = "table"


@dataclass
class Column:
    key: str                         # a key of the SQL's headline map: name, or name[key]
    spec: dict[str, Any]             # the head's declaration of the metric
    part: str = ""                   # the key inside a per-key metric

    def header(self, terminal: bool, bare: bool) -> str:
        if not self.part:
            return self.spec["short"] if terminal else self.spec["label"]
        return self.part if terminal and bare else f"{self.spec['short']}[{self.part}]"


def rows(dataset: str, head: str, target: str = "", split: str = "") -> list[dict[str, Any]]:
    con = catalog.connect()
    try:
        found = queries.run_file(con, "compare_backbones", dataset=dataset, head=head, target=target,
                                 split_name=split).to_pylist()
    except duckdb.Error as err:
        raise UsageError(f"queries/compare_backbones.sql: {one_line(err)}") from None
    for r in found:  # Arrow hands a MAP back as (key, value) pairs
        r["headline"] = dict(r["headline"] or [])
        r["headline_std"] = dict(r["headline_std"] or [])
    return found


def columns(found: list[dict[str, Any]]) -> list[Column]:
    """The metric columns with a value in some row, in the head's declared order."""
    specs: dict[str, dict[str, Any]] = {}
    for r in found:
        for spec in json.loads(r["declared"] or "[]") or []:
            specs.setdefault(spec["name"], spec)
    keys = [k for k in dict.fromkeys(k for r in found for k in r["headline"])
            if any(r["headline"].get(k) is not None for r in found)]
    out = []
    for name, spec in specs.items():
        if spec.get("per_key"):
            out += [Column(k, spec, k[len(name) + 1:-1]) for k in keys if k.startswith(f"{name}[")]
        elif name in keys:
            out.append(Column(name, spec))
    return out


def _value(mean: float | None, std: float | None, spec: str, terminal: bool) -> str:
    if mean is None:
        return "–"
    plus = "\n±" if terminal else " ± "  # the terminal: the spread on a line of its own
    return f"{mean:{spec}}" + (f"{plus}{std:{spec}}" if std is not None else "")


def _best(found: list[dict[str, Any]], column: Column) -> float | None:
    values = [r["headline"].get(column.key) for r in found]
    values = [v for v in values if v is not None]
    if len(values) < 2 or len(set(values)) == 1 or column.spec.get("direction") == "none":
        return None
    return max(values) if column.spec.get("direction", "max") == "max" else min(values)


def table(found: list[dict[str, Any]], terminal: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and cells: fixed columns, then the declared metrics; the best of each column bold."""
    metrics = columns(found)
    bare = len({c.spec["name"] for c in metrics if c.part}) == 1
    several = {key: len({r[key] for r in found}) > 1 for key in ("split_name", "target")}
    variants = any(r["variant"] for r in found)
    header = ["backbone", "layer", *(["variant"] if variants else []), *(["target"] if several["target"] else []),
              *(["split"] if several["split_name"] else []), "on", "n", "seeds",
              *(c.header(terminal, bare) for c in metrics)]
    best = {c.key: _best(found, c) for c in metrics}
    cells = []
    for r in found:
        layer = r["layer"] + (f" (best of {r['layers_tried']})" if r["layers_tried"] else "")
        row = [r["backbone"], layer, *([r["variant"] or "–"] if variants else []),
               *([r["target"]] if several["target"] else []), *([r["split_name"]] if several["split_name"] else []),
               r["eval_split"], "–" if r["n"] is None else str(r["n"]), str(r["seeds"])]
        for c in metrics:
            mean = r["headline"].get(c.key)
            text = _value(mean, r["headline_std"].get(c.key), c.spec["format"], terminal)
            if mean is not None and mean == best[c.key]:
                text = f"[bold]{escape(text)}[/]" if terminal else f"**{text}**"
            elif terminal:
                text = escape(text)
            row.append(text)
        cells.append(row)
    return header, cells


def captions(found: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(c.spec["about"] for c in columns(found) if c.spec.get("about")))


def markdown(cfg: CompareConfig, header: list[str], cells: list[list[str]], notes: list[str]) -> str:
    lines = [f"# {cfg.head} on {cfg.dataset}: {cfg.target or 'every target'}"
             + (f" (split {cfg.split})" if cfg.split else ""), "",
             "Latest run per backbone × layer × variant (`just runs dataset=" + cfg.dataset + "` lists them all); "
             "`on` is the split the numbers come from: test when the split has one, else val; the best value of "
             "each column is bold.", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    lines += ["", *notes] if notes else []
    return "\n".join(lines) + "\n"


def _methods_tables(found: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, cells, caption) of each listed run that ranked several methods (dcas)."""
    out = []
    for r in found:
        test = compare_methods.run_metrics(r["run_id"]).get("test") or {}
        if test.get("methods"):
            header, cells = compare_methods.table(test)
            about = r["backbone"] + (f", {r['variant']}" if r["variant"] else "")
            title = f"methods of run {r['run_id']} ({about})"
            out.append((title, header, cells, compare_methods.caption(test)))
    return out


def report_path(cfg: CompareConfig) -> Path:
    suffix = f"-{cfg.split}" if cfg.split else ""
    return paths.reports_dir(cfg.dataset) / f"compare-{cfg.head}-{cfg.target or 'all'}{suffix}.md"


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    cfg = parse_config(CompareConfig, pairs)
    found = rows(cfg.dataset, cfg.head, cfg.target, cfg.split)
    if not found:
        fail(f"no {cfg.head} runs on {cfg.dataset}" + (f" for target={cfg.target}" if cfg.target else "")
             + (f" and split={cfg.split}" if cfg.split else "")
             + f": train some first, e.g. just train head={cfg.head} dataset={cfg.dataset} backbone=..."
             + (f" target={cfg.target}" if cfg.target else ""), code=1)
    header, cells = table(found)
    text = markdown(cfg, header, cells, captions(found))
    per_run = _methods_tables(found)
    text += "".join("\n" + compare_methods.markdown(title, h, c, note) for title, h, c, note in per_run)
    if cfg.format == "md":
        print(text, end="")
    else:  # the terminal: short headers, the spread under the mean, bare keys of a per-key metric
        header, cells = table(found, terminal=True)
        out = Table(title=f"{cfg.head} · {cfg.dataset}" + (f" · {cfg.target}" if cfg.target else ""),
                    show_header=True, header_style="bold", caption="\n".join(captions(found)) or None)
        for name in header:
            words = name in ("backbone", "layer", "variant", "target", "split")
            out.add_column(escape(name), justify="left" if words else "right", no_wrap=words)
        for row in cells:
            out.add_row(*row)
        make_console().print(out)
        for title, h, c, note in per_run:
            methods = Table(title=escape(title), show_header=True, header_style="bold", caption=escape(note))
            for name in h:
                methods.add_column(escape(name), justify="left" if name == "method" else "right")
            for row in c:
                methods.add_row(*(escape(v) for v in row))
            make_console().print(methods)
    target = atomic.write_text(text, report_path(cfg))
    make_console(stderr=True).print(f"wrote {target}", highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    run_main(main)
