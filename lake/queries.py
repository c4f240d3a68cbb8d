"""Named SQL files from `queries/`: found by name, run with bound parameters.

Parameters are always bound (`$name` in the file), never formatted into the text. Values
from the command line arrive as text; a query that compares them to numbers casts explicitly.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb
import pyarrow as pa

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def queries_dir() -> Path:
    # A source checkout (editable install) keeps queries/ beside the packages; a wheel install
    # ships them as data files under <prefix>/share/audiolake/queries.
    checkout = Path(__file__).resolve().parents[1] / "queries"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "audiolake" / "queries"


def resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = queries_dir() / (path.stem + ".sql")
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in queries_dir().glob("*.sql"))) or "none"
    raise FileNotFoundError(f"no query file {name_or_path!r} (named queries: {known})")


def parameters(sql: str) -> list[str]:
    """The `$params` a query uses, in order of first appearance (comments excluded)."""
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    seen: list[str] = []
    for name in _PARAM.findall(body):
        if name not in seen:
            seen.append(name)
    return seen


def run(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, object] | None = None) -> pa.Table:
    """Runs one query and returns Arrow; unused parameters are an error, missing ones too."""
    params = dict(params or {})
    wanted = parameters(sql)
    missing = [p for p in wanted if p not in params]
    if missing:
        raise KeyError(f"query needs {', '.join('$' + m for m in missing)}: pass {missing[0]}=VALUE")
    extra = [p for p in params if p not in wanted]
    if extra:
        raise KeyError(f"query has no parameter ${extra[0]} (it takes: {', '.join(wanted) or 'none'})")
    relation = con.sql(sql, params=params or None)
    if relation is None:  # a statement with no result (CREATE, COPY ...)
        return pa.table({})
    return relation.to_arrow_table()


def run_file(con: duckdb.DuckDBPyConnection, name_or_path: str, **params: object) -> pa.Table:
    return run(con, resolve(name_or_path).read_text(encoding="utf-8"), params)


def predicate(where: str, key: str = "where") -> str:
    """A user's `where=` as one parenthesised SQL expression, or a ValueError naming the key.

    `where=` is raw SQL by design, but it is spliced into `... WHERE dataset = $dataset AND (…)`:
    text such as `1=1) OR (1=1` would close the parentheses and escape the dataset and split
    filter. DuckDB's own parser must read it as exactly one expression; the text it renders
    back (comments dropped, parentheses balanced) is what runs.
    """
    try:
        expression = duckdb.SQLExpression(where)
    except (duckdb.Error, duckdb.InvalidInputException) as err:
        first = " ".join(str(err).split())
        raise ValueError(f"{key}={where!r} is not one SQL expression: {first[:200]}") from None
    return f"({expression})"
