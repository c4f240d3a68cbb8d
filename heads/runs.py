"""`just runs [dataset=NAME] [where=PREDICATE] [limit=N]` — experiment results, newest first.

    just runs
    just runs dataset=eatd where="head = 'probe' AND target = 'label'"
    just runs where="macro_f1 > 0.6 AND backbones LIKE '%mert%'"
    just runs where="head = 'scorer' AND spearman > 0.5"

The rows are `queries/runs.sql`; each run's headline metrics are the ones its head declared
(heads/protocol.py), so a new head's metrics appear here without this file knowing them: each
becomes a column (numbers on test when the split has test rows, else on val). `where=` is a
SQL predicate on those columns and on run_id, head, dataset, backbones, layer, split_name,
target, variant, eval_split, seeds, data_fingerprint, created_at, path, config, metrics (the
last two JSON).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from rich.table import Table

from lake import catalog, paths, queries
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.errors import one_line

# (column, header) shown before the metrics
FIXED = (("run_id", "run_id"), ("head", "head"), ("dataset", "dataset"), ("backbones", "backbones"),
         ("layer", "layer"), ("split_name", "split"), ("target", "target"), ("variant", "variant"),
         ("seeds", "seeds"), ("eval_split", "on"))


@dataclass
class RunsConfig:
    dataset: str = ""
    where: str = ""
    limit: int = 50

    def __post_init__(self) -> None:
        if self.where.strip():
            queries.predicate(self.where)
        if not self.limit >= 1:
            raise ValueError(f"limit={self.limit}: must be 1 or more")


def declared(result: pa.Table) -> dict[str, dict[str, Any]]:
    """metric name → its declaration (the first run's that declares it), in declared order."""
    specs: dict[str, dict[str, Any]] = {}
    for text in result.column("declared").to_pylist():
        for spec in json.loads(text or "[]") or []:
            specs.setdefault(spec["name"], spec)
    return specs


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def select(con: duckdb.DuckDBPyConnection, dataset: str = "", where: str = "") -> pa.Table:
    """queries/runs.sql with one column per declared metric, filtered by `where`."""
    body = queries.resolve("runs").read_text(encoding="utf-8")
    try:
        listed = con.sql(body, params={"dataset": dataset}).to_arrow_table()
        metrics = [n for n in declared(listed) if n not in listed.column_names]
        spread = "".join(f', headline[{_literal(n)}] AS "{n}"' for n in metrics)
        con.register("runs_listed", listed)
        filtered = f"WHERE {queries.predicate(where)}" if where.strip() else ""
        return con.sql(f"SELECT *{spread} FROM runs_listed {filtered} ORDER BY created_at DESC, run_id DESC"
                       ).to_arrow_table()
    except (duckdb.Error, ValueError) as err:
        key = f"where={where!r}" if where.strip() else "queries/runs.sql"
        raise UsageError(f"{key}: DuckDB says: {one_line(err)}") from None


SAID_ONCE = ("head", "dataset", "split_name")  # when every row shares the value: in the title, not a column


def render(result: pa.Table, limit: int) -> Table:
    """One column per declared metric when the rows share a head; with several heads, whose
    metrics differ, one `headline` column with each run's own declared metrics."""
    rows = result.slice(0, limit).to_pylist()
    specs = {n: s for n, s in declared(result.slice(0, limit)).items() if n in result.column_names}
    same = {n: rows[0][n] for n in SAID_ONCE if len({r[n] for r in rows}) == 1}
    fixed = [(n, h) for n, h in FIXED if n not in same and (n != "variant" or any(r["variant"] for r in rows))]
    metrics = [(n, s["short"]) for n, s in specs.items() if any(r[n] is not None for r in rows)]
    title = " · ".join(f"{'split' if n == 'split_name' else n} {v}" for n, v in same.items())
    table = Table(title=title or None, show_header=True, header_style="bold")
    one_head = "head" in same
    numeric = {"seeds", *(n for n, _ in metrics)} if one_head else {"seeds"}
    for name, header in [*fixed, *(metrics if one_head else [("headline", "headline metrics")])]:
        # numbers and ids are never cut short; names may be
        table.add_column(header, justify="right" if name in numeric else "left",
                         no_wrap=name == "run_id", min_width=5 if name in numeric else None)
    for row in rows:
        cells = [str(row[n]) if row[n] is not None else "–" for n, _ in fixed]
        if one_head:
            cells += [f"{row[n]:{specs[n]['format']}}" if row[n] is not None else "–" for n, _ in metrics]
        else:
            own = [s for s in json.loads(row["declared"] or "[]") or [] if row.get(s["name"]) is not None]
            cells.append("  ".join(f"{s['short']} {row[s['name']]:{s['format']}}" for s in own) or "–")
        table.add_row(*cells)
    return table


def main(argv: list[str]) -> int:
    pairs = key_values(argv)
    cfg = parse_config(RunsConfig, pairs)
    result = select(catalog.connect(), cfg.dataset, cfg.where)
    console = make_console()
    if result.num_rows == 0:
        fail("no runs" + (f" for dataset {cfg.dataset}" if cfg.dataset else "")
             + (f" where {cfg.where}" if cfg.where else "") + ": train one with just train head=probe ...", code=1)
    console.print(render(result, cfg.limit))
    shown = min(cfg.limit, result.num_rows)
    more = f", newest {shown} shown (limit=)" if shown < result.num_rows else ""
    console.print(f"[dim]{result.num_rows} run{'s' if result.num_rows != 1 else ''}{more}; "
                  f"each one's folder is {paths.runs_dir()}/<run_id>/[/]", highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    run_main(main)
