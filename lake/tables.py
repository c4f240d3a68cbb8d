"""`just tables` — each table with rows, partitions, files and bytes."""
from __future__ import annotations

from rich.table import Table

from lake import catalog, paths
from lake.cli import UsageError, make_console, run_main, split_args


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def main(argv: list[str]) -> int:
    pairs, words = split_args(argv)
    if pairs or words:
        raise UsageError("just tables takes no arguments")
    table = Table(title=f"lake at {paths.root()}", show_header=True, header_style="bold")
    for name, justify in [("table", "left"), ("rows", "right"), ("partitions", "right"),
                          ("files", "right"), ("bytes", "right")]:
        table.add_column(name, justify=justify)
    for row in catalog.table_stats():
        table.add_row(row["table"], f"{row['rows']:,}", str(row["partitions"]),
                      str(row["files"]), human_bytes(row["bytes"]))
    make_console().print(table)
    return 0


if __name__ == "__main__":
    run_main(main)
