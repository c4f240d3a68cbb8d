"""report.md of a run, and the same metrics as a rich table for the terminal."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from heads.data import Data

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


def fmt(mean: Any, std: Any = None) -> str:
    if mean is None:
        return "–"
    if isinstance(mean, float):
        return f"{mean:.4f}" + (f" ± {std:.4f}" if isinstance(std, float) else "")
    return str(mean)


def headline_rows(result: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(metric, {part: "mean ± std"}) for the scalar metrics every part reports."""
    std = result.get("seeds", {}).get("std", {})
    parts = [p for p in ("val", "test") if p in result]
    names = [m for m in HEADLINE if any(m in result[p] for p in parts)]
    names += [m for p in parts for m, v in result[p].items()
              if isinstance(v, float) and m not in names and m not in HEADLINE]
    return [(m, {p: fmt(result[p].get(m), std.get(p, {}).get(m)) for p in parts}) for m in dict.fromkeys(names)]


def per_class_rows(result: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    std = result.get("seeds", {}).get("std", {})
    parts = [p for p in ("val", "test") if "per_class_accuracy" in result.get(p, {})]
    if not parts:
        return []
    classes = list(result[parts[0]]["per_class_accuracy"])
    return [(c, {p: fmt(result[p]["per_class_accuracy"].get(c), std.get(p, {}).get("per_class_accuracy", {}).get(c))
                 for p in parts}) for c in classes]


def _md_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    align = "---:" if numbers else ":---"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + [align] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(row: dict[str, Any], data: Data, result: dict[str, Any], plots: list[str], notes: list[str]) -> str:
    sel = data.selection
    seeds = result.get("seeds", {})
    counts = data.counts()
    out = [f"# {row['head']} · {sel.dataset} · {sel.target}", "",
           f"run `{row['run_id']}` · {row['created_at']:%Y-%m-%d %H:%M:%S} UTC · git `{row['git_commit'][:12]}`", "",
           "## Selection", "",
           _md_table(["key", "value"], [
               ["backbone(s)", " ⊕ ".join(f"{b} ({d})" for b, d in data.dims.items())],
               ["layer", f"{row['layer']}" + (f" (best on val of {len(data.layers)})" if len(data.layers) > 1 else "")],
               ["split", sel.split], ["where", f"`{sel.where}`" if sel.where else "–"],
               ["select", sel.select or "–"],
               ["rows", ", ".join(f"{p} {sum(c.values())}" for p, c in counts.items())
                + (f"; {data.dropped_null} dropped (NULL {sel.target})" if data.dropped_null else "")],
               ["seeds", ", ".join(map(str, seeds.get("values", []))) or "–"],
               ["data fingerprint", f"`{row['data_fingerprint'][:16]}…`"],
           ], numbers=False), "",
           "## Rows per class", "",
           _md_table(["split", *data.classes], [[p, *(str(c[k]) for k in data.classes)] for p, c in counts.items()]), ""]
    parts = [p for p in ("val", "test") if p in result]
    if "test" not in result:
        out += ["> No test rows in this split: the numbers below are on val, which also chose the",
                "> early-stopping epoch" + (" and the layer" if len(data.layers) > 1 else "") + ", so they are optimistic.", ""]
    n = f" (mean ± std over {len(seeds['values'])} seeds)" if len(seeds.get("values", [])) > 1 else ""
    out += [f"## Metrics{n}", "", _md_table(["metric", *parts], [[m, *(v[p] for p in parts)]
                                                                  for m, v in headline_rows(result)]), ""]
    per_class = per_class_rows(result)
    if per_class:
        out += ["## Per-class accuracy (recall)", "",
                _md_table(["class", *parts], [[c, *(v.get(p, "–") for p in parts)] for c, v in per_class]), ""]
    if "layers" in result:
        out += ["## Layers (val)", "", _md_table(["layer", "val macro-F1", "val loss"], [
            [f"**{name}**" if name == row["layer"] else name, fmt(s["val_macro_f1"]), fmt(s["val_loss"])]
            for name, s in result["layers"].items()]), ""]
    if notes:
        out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    if plots:
        out += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(out)


def terminal(result: dict[str, Any]) -> Table:
    parts = [p for p in ("val", "test") if p in result]
    table = Table(show_header=True, header_style="bold")
    table.add_column("metric")
    for part in parts:
        table.add_column(part, justify="right")
    for name, values in headline_rows(result):
        table.add_row(name, *(values[p] for p in parts))
    for name, values in per_class_rows(result):
        table.add_row(escape(f"acc[{name}]"), *(values.get(p, "–") for p in parts))
    return table

