"""`just compare dataset=NAME head=probe target=COL [split=NAME] [format=table|md]`

Seed 002's table, from the runs table: one row per backbone (or fused backbones) × layer, the
latest run of the head on the target, with accuracy, balanced accuracy, macro-F1, ROC-AUC
(binary targets) and one accuracy (recall) column per class; "± std" where the run averaged
several seeds. The rows are `queries/compare_backbones.sql`; the per-class map it returns is
spread into columns here (a PIVOT over classes found in the data cannot take bound parameters).
Also written as Markdown to `data/reports/<dataset>/compare-<head>-<target>.md`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
from rich.markup import escape
from rich.table import Table

from lake import atomic, catalog, paths, queries
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.errors import one_line

HEADLINE = (("accuracy", "accuracy"), ("balanced_accuracy", "balanced acc"), ("macro_f1", "macro-F1"),
            ("roc_auc", "ROC-AUC"))


@dataclass
class CompareConfig:
    dataset: str
    target: str
    head: str = "probe"
    split: str = ""                  # a split name; empty: the latest runs on any split
    format: Literal["table", "md"] = "table"


def rows(dataset: str, head: str, target: str, split: str = "") -> list[dict[str, Any]]:
    con = catalog.connect()
    try:
        return queries.run_file(con, "compare_backbones", dataset=dataset, head=head, target=target,
                                split_name=split).to_pylist()
    except duckdb.Error as err:
        raise UsageError(f"queries/compare_backbones.sql: {one_line(err)}") from None


def _value(row: dict[str, Any], name: str, digits: int = 4) -> str:
    mean, std = row.get(name), row.get(f"{name}_std")
    if mean is None:
        return "–"
    plus = " ± " if digits > 3 else "\n±"  # the terminal: the spread on a line of its own
    return f"{mean:.{digits}f}" + (f"{plus}{std:.{digits}f}" if std is not None else "")


def table(found: list[dict[str, Any]], digits: int = 4) -> tuple[list[str], list[list[str]]]:
    """Header and cells: fixed columns, the headline metrics present, one column per class."""
    for r in found:  # Arrow hands a MAP back as (key, value) pairs
        r["per_class_accuracy"] = dict(r["per_class_accuracy"] or [])
        r["per_class_accuracy_std"] = dict(r["per_class_accuracy_std"] or [])
    classes = list(dict.fromkeys(c for r in found for c in r["per_class_accuracy"]))
    metrics = [(k, label) for k, label in HEADLINE if any(r[k] is not None for r in found)]
    several_splits = len({r["split_name"] for r in found}) > 1
    header = ["backbone", "layer", *(["split"] if several_splits else []), "on", "n", "seeds",
              *(label for _, label in metrics), *(f"acc[{c}]" for c in classes)]
    cells = []
    for r in found:
        per_class, spread = r["per_class_accuracy"], r["per_class_accuracy_std"]
        layer = r["layer"] + (f" (best of {r['layers_tried']})" if r["layers_tried"] else "")
        cells.append([r["backbone"], layer, *([r["split_name"]] if several_splits else []), r["eval_split"],
                      str(r["n"]), str(r["seeds"]), *(_value(r, k, digits) for k, _ in metrics),
                      *(_value({"c": per_class.get(c), "c_std": spread.get(c)}, "c", digits) for c in classes)])
    return header, cells


def markdown(cfg: CompareConfig, header: list[str], cells: list[list[str]]) -> str:
    lines = [f"# {cfg.head} on {cfg.dataset}: {cfg.target}" + (f" (split {cfg.split})" if cfg.split else ""), "",
             "Latest run per backbone × layer (`just runs dataset=" + cfg.dataset + "` lists them all); "
             "`on` is the split the numbers come from: test when the split has one, else val.", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def report_path(cfg: CompareConfig) -> Path:
    suffix = f"-{cfg.split}" if cfg.split else ""
    return paths.reports_dir(cfg.dataset) / f"compare-{cfg.head}-{cfg.target}{suffix}.md"


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    cfg = parse_config(CompareConfig, pairs)
    found = rows(cfg.dataset, cfg.head, cfg.target, cfg.split)
    if not found:
        fail(f"no {cfg.head} runs on {cfg.dataset} for target={cfg.target}"
             + (f" and split={cfg.split}" if cfg.split else "")
             + f": train some first, e.g. just train head={cfg.head} dataset={cfg.dataset} backbone=... "
             f"target={cfg.target}", code=1)
    header, cells = table(found)
    text = markdown(cfg, header, cells)
    if cfg.format == "md":
        print(text, end="")
    else:  # the terminal gets 3 decimals and bare class names, to fit a row on the screen
        header, cells = table(found, digits=3)
        out = Table(title=f"{cfg.head} · {cfg.dataset} · {cfg.target}", show_header=True, header_style="bold",
                    caption="a column per class: that class's accuracy (recall)" if any(
                        h.startswith("acc[") for h in header) else None)
        short = {"accuracy": "acc", "balanced acc": "bal acc", "macro-F1": "F1", "ROC-AUC": "AUC"}
        for i, name in enumerate(header):
            out.add_column(escape(name[4:-1] if name.startswith("acc[") else short.get(name, name)),
                           justify="left" if i < 2 else "right",
                           min_width=6 if name in short or name.startswith("acc[") else None)
        for row in cells:
            out.add_row(*row)
        make_console().print(out)
    target = atomic.write_text(text, report_path(cfg))
    make_console(stderr=True).print(f"wrote {target}", highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    run_main(main)
