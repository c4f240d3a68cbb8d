"""report.md of a run, and the same metrics as a rich table for the terminal.

Both show what the head declared (`metrics.headline`, written from the module's HEADLINE):
its scalar metrics first, in its format, then any other number the head reported; a per-key
metric (the probe's per-class accuracy) as a table of its own.
"""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from heads.data import Data


def fmt(mean: Any, std: Any = None, spec: str = ".4f") -> str:
    if mean is None:
        return "–"
    if isinstance(mean, float):
        return f"{mean:{spec}}" + (f" ± {std:{spec}}" if isinstance(std, float) else "")
    return str(mean)


def _parts(result: dict[str, Any]) -> list[str]:
    return [p for p in ("val", "test") if p in result]


def headline_rows(result: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(metric, {part: "mean ± std"}): the declared scalars, then the other numbers every part reports."""
    std = result.get("seeds", {}).get("std", {})
    parts = _parts(result)
    declared = {m["name"]: m for m in result.get("headline", []) if not m.get("per_key")}
    names = [m for m in declared if any(m in result[p] for p in parts)]
    names += [m for p in parts for m, v in result[p].items() if isinstance(v, float) and m not in declared]
    return [(m, {p: fmt(result[p].get(m), std.get(p, {}).get(m), declared.get(m, {}).get("format", ".4f"))
                 for p in parts}) for m in dict.fromkeys(names)]


def per_key_tables(result: dict[str, Any]) -> list[tuple[dict[str, Any], list[tuple[str, dict[str, str]]]]]:
    """(metric, [(key, {part: "mean ± std"})]) for each per-key metric: the declared ones, then any
    other {key: number} the head reported (the scorer's MAE per band)."""
    std = result.get("seeds", {}).get("std", {})
    parts = _parts(result)
    declared = [m for m in result.get("headline", []) if m.get("per_key")]
    names = {m["name"] for m in result.get("headline", [])}
    others = [{"name": k, "label": k, "short": k, "format": ".4f"} for k in dict.fromkeys(
        k for p in parts for k, v in result[p].items()
        if k not in names and isinstance(v, dict) and v and all(isinstance(x, (int, float, type(None))) for x in v.values()))]
    out = []
    for metric in [*declared, *others]:
        present = [p for p in parts if isinstance(result[p].get(metric["name"]), dict)]
        if not present:
            continue
        keys = list(dict.fromkeys(k for p in present for k in result[p][metric["name"]]))
        out.append((metric, [(k, {p: fmt(result[p].get(metric["name"], {}).get(k),
                                         std.get(p, {}).get(metric["name"], {}).get(k), metric["format"])
                                  for p in present}) for k in keys]))
    return out


def _md_table(header: list[str], rows: list[list[str]], numbers: bool = True) -> str:
    align = "---:" if numbers else ":---"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + [align] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(row: dict[str, Any], data: Data, result: dict[str, Any], plots: list[str], notes: list[str],
             described: str = "") -> str:
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
               ["rows", ", ".join(f"{p} {n}" for p, n in counts.items())
                + (f"; {data.dropped_null} dropped (NULL in a column the head needs)" if data.dropped_null else "")],
               ["seeds", ", ".join(map(str, seeds.get("values", []))) or "–"],
               ["data fingerprint", f"`{row['data_fingerprint'][:16]}…`"],
           ], numbers=False), ""]
    if described:
        out += [described.rstrip("\n"), ""]
    parts = _parts(result)
    if "test" not in result:
        out += ["> No test rows in this split: the numbers below are on val, which also chose the",
                "> early-stopping epoch" + (" and the layer" if len(data.layers) > 1 else "") + ", so they are optimistic.", ""]
    n = f" (mean ± std over {len(seeds['values'])} seeds)" if len(seeds.get("values", [])) > 1 else ""
    out += [f"## Metrics{n}", "", _md_table(["metric", *parts], [[m, *(v[p] for p in parts)]
                                                                  for m, v in headline_rows(result)]), ""]
    declared = {m["name"] for m in result.get("headline", [])}
    for metric, rows in per_key_tables(result):
        title = metric["label"][0].upper() + metric["label"][1:] if metric["name"] in declared else metric["label"]
        out += [f"## {title}", "",
                _md_table([metric["short"], *parts], [[k, *(v.get(p, "–") for p in parts)] for k, v in rows]), ""]
    if "layers" in result:
        columns = list(dict.fromkeys(c for s in result["layers"].values() for c in s))
        out += ["## Layers (val)", "", _md_table(["layer", *columns], [
            [f"**{name}**" if name == row["layer"] else name, *(fmt(s.get(c)) for c in columns)]
            for name, s in result["layers"].items()]), ""]
    if notes:
        out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    if plots:
        out += ["## Plots", "", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(out)


def terminal(result: dict[str, Any]) -> Table:
    parts = _parts(result)
    table = Table(show_header=True, header_style="bold")
    table.add_column("metric")
    for part in parts:
        table.add_column(part, justify="right")
    for name, values in headline_rows(result):
        table.add_row(name, *(values[p] for p in parts))
    for metric, rows in per_key_tables(result):
        for key, values in rows:
            table.add_row(escape(f"{metric['short']}[{key}]"), *(values.get(p, "–") for p in parts))
    return table
