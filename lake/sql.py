"""`just sql` — ad-hoc or named SQL over the lake.

    just sql "SELECT culture, count(*) FROM tracks GROUP BY ALL"
    just sql "SELECT * FROM tracks" format=csv out=tracks.csv
    just sql file=queries/class_balance.sql dataset=demo
"""
from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
from rich.console import Console
from rich.table import Table

from lake import atomic, catalog, queries
from lake.cli import UsageError, fail, run_main, split_args, make_console

FORMATS = ("table", "csv", "json", "parquet")


def render(result: pa.Table, console: Console, max_rows: int = 50) -> None:
    table = Table(show_header=True, header_style="bold")
    for field in result.schema:
        table.add_column(f"{field.name}\n[dim]{field.type}[/]", overflow="fold")
    for row in result.slice(0, max_rows).to_pylist():
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)
    more = result.num_rows - max_rows
    console.print(f"[dim]{result.num_rows} rows" + (f", first {max_rows} shown[/]" if more > 0 else "[/]"))


def _cell(value: object) -> str:
    if value is None:
        return "[dim]NULL[/]"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        head = ", ".join(_cell(v) for v in value[:6])
        return f"[{head}, … {len(value)} items]"
    return str(value)


def export(result: pa.Table, fmt: str, out: Path | None) -> None:
    if fmt == "parquet":
        if out is None:
            raise UsageError("format=parquet needs out=FILE")
        atomic.write_parquet(result, out)
    elif fmt == "csv":
        if out is None:
            pa_csv.write_csv(result, sys.stdout.buffer)
        else:
            with atomic.atomic_path(out) as tmp:
                pa_csv.write_csv(result, tmp)
    else:
        import json

        text = json.dumps(result.to_pylist(), ensure_ascii=False, default=str, indent=1)
        if out is None:
            print(text)
        else:
            atomic.write_text(text + "\n", out)


def main(argv: list[str]) -> int:
    pairs, words = split_args(argv)
    fmt = pairs.pop("format", "table")
    if fmt not in FORMATS:
        raise UsageError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(pairs.pop("out")) if "out" in pairs else None
    max_rows = pairs.pop("max_rows", "50")
    if not max_rows.isdigit():
        raise UsageError(f"max_rows={max_rows!r}: expected a whole number")
    file = pairs.pop("file", None)
    if file and words:
        raise UsageError("give either an inline query or file=, not both")
    if not file and len(words) != 1:
        raise UsageError('usage: just sql "SELECT ..." | just sql file=queries/NAME.sql key=value ...')
    try:
        sql = queries.resolve(file).read_text(encoding="utf-8") if file else words[0]
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if fmt == "table" and out is not None:
        fmt = {".csv": "csv", ".json": "json", ".parquet": "parquet"}.get(out.suffix, "")
        if not fmt:
            raise UsageError(f"out={out}: give format=csv|json|parquet")
    con = catalog.connect()
    try:
        result = queries.run(con, sql, pairs)
    except KeyError as err:
        raise UsageError(err.args[0]) from None
    except duckdb.Error as err:
        fail(str(err).strip(), code=1)
    if fmt == "table":
        render(result, make_console(), int(max_rows))
    else:
        export(result, fmt, out)
        if out is not None:
            make_console(stderr=True).print(f"wrote {result.num_rows} rows to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
