"""`key=value` command lines parsed into dataclass configs, with errors that name the key.

Every CLI in audiolake goes through `parse_config`: unknown keys and values of the wrong
type are rejected by name, so `just ingest datset=demo` fails on `datset`, not later.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class UsageError(Exception):
    """A bad command line: the message names the offending key."""


def split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Separates `key=value` pairs from bare words (e.g. an inline SQL string)."""
    pairs: dict[str, str] = {}
    words: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.isidentifier():
            if key in pairs:
                raise UsageError(f"{key}= given twice")
            pairs[key] = value
        else:
            words.append(arg)
    return pairs, words


def key_values(argv: list[str]) -> dict[str, str]:
    """The `key=value` pairs of a command that takes nothing else; a bare word is an error."""
    pairs, words = split_args(argv)
    if words:
        raise UsageError(f"unexpected argument {words[0]!r}: arguments are key=value")
    return pairs


def _convert(key: str, raw: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw.lower() in ("", "none", "null") and len(options) < len(typing.get_args(annotation)):
            return None
        return _convert(key, raw, options[0])
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if raw not in choices:
            raise UsageError(f"{key}={raw!r}: expected one of {', '.join(map(str, choices))}")
        return raw
    if origin in (tuple, list):
        (inner, *_rest) = typing.get_args(annotation) or (str,)
        items = [_convert(key, part.strip(), inner) for part in raw.split(",") if part.strip()]
        return tuple(items) if origin is tuple else items
    if annotation is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise UsageError(f"{key}={raw!r}: expected true or false")
    if annotation in (int, float):
        try:
            value = annotation(raw)
        except ValueError:
            raise UsageError(f"{key}={raw!r}: expected {annotation.__name__}") from None
        # float("nan") parses, and NaN passes every `x <= 0` check after it: refuse it here,
        # once, for every CLI.
        if not math.isfinite(value):
            raise UsageError(f"{key}={raw!r}: expected a finite number")
        return value
    if annotation is Path:
        return Path(raw).expanduser()
    return raw


def parse_config(cls: type[T], pairs: dict[str, str], ignore: tuple[str, ...] = ()) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # init=False: derived, never given
    unknown = [k for k in pairs if k not in fields and k not in ignore]
    if unknown:
        raise UsageError(
            f"unknown key {unknown[0]}= (known: {', '.join(sorted(set(fields) | set(ignore)))})"
        )
    values = {k: _convert(k, v, hints[k]) for k, v in pairs.items() if k in fields}
    missing = [
        name for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UsageError(f"missing {missing[0]}=")
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from None


def make_console(stderr: bool = False, **options: Any) -> "Console":
    """A rich console that stays readable when piped: logs and CI get 160 columns, not 80."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else 160
    return Console(stderr=stderr, width=width, **options)


def fail(message: str, code: int = 2) -> NoReturn:
    make_console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def run_main(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> None:
    """Runs a CLI entry point; usage errors become one line and exit code 2."""
    try:
        code = main(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    sys.exit(code or 0)
