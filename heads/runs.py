"""`just runs [dataset=NAME] [where=PREDICATE] [limit=N]` — experiment results, newest first.

    just runs
    just runs dataset=eatd where="head = 'probe' AND target = 'label'"
    just runs where="macro_f1 > 0.6 AND backbones LIKE '%mert%'"

The rows are `queries/runs.sql`; `where=` is a SQL predicate on its columns (run_id, head,
dataset, backbones, layer, split_name, target, eval_split, seeds, accuracy, balanced_accuracy,
macro_f1, roc_auc, data_fingerprint, created_at, path, config, metrics — the last two JSON).
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
from rich.table import Table

from lake import catalog, paths, queries
from lake.cli import UsageError, fail, key_values, make_console, parse_config, run_main
from lake.errors import one_line

# (column, header); numbers are right-aligned with 3 decimals
SHOWN = (("run_id", "run_id"), ("head", "head"), ("dataset", "dataset"), ("backbones", "backbones"),
         ("layer", "layer"), ("split_name", "split"), ("target", "target"), ("seeds", "seeds"),
         ("eval_split", "on"), ("accuracy", "acc"), ("balanced_accuracy", "bal acc"), ("macro_f1", "F1"),
         ("roc_auc", "AUC"))


@dataclass
class RunsConfig:
    dataset: str = ""
    where: str = ""
    limit: int = 50


def select(con: duckdb.DuckDBPyConnection, dataset: str = "", where: str = "") -> pa.Table:
    body = queries.resolve("runs").read_text(encoding="utf-8")
    sql = body if not where.strip() else f"SELECT * FROM (\n{body}\n) AS r WHERE ({where})\nORDER BY created_at DESC, run_id DESC"
    try:
        return con.sql(sql, params={"dataset": dataset}).to_arrow_table()
    except duckdb.Error as err:
        key = f"where={where!r}" if where.strip() else "queries/runs.sql"
        raise UsageError(f"{key}: DuckDB says: {one_line(err)}") from None


NUMERIC = {"seeds", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc"}
SAID_ONCE = ("head", "dataset", "split_name")  # when every row shares the value: in the title, not a column


def render(result: pa.Table, limit: int) -> Table:
    rows = result.slice(0, limit).to_pylist()
    same = {n: rows[0][n] for n in SAID_ONCE if len({r[n] for r in rows}) == 1}
    shown = [(n, h) for n, h in SHOWN if n not in same]
    title = " · ".join(f"{'split' if n == 'split_name' else n} {v}" for n, v in same.items())
    table = Table(title=title or None, show_header=True, header_style="bold")
    for name, header in shown:
        # numbers and ids are never cut short; names may be
        table.add_column(header, justify="right" if name in NUMERIC else "left",
                         no_wrap=name == "run_id", min_width=5 if name in NUMERIC else None)
    for row in rows:
        table.add_row(*("–" if row[n] is None else f"{row[n]:.3f}" if isinstance(row[n], float) else str(row[n])
                        for n, _ in shown))
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
