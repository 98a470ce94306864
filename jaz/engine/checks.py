"""Checks shared by the loaders of TOML inputs (jobnets, calendars, later configs).

A `Collector` gathers every problem of one file, so that all of them are reported at
once; the `check_*` helpers add a problem and return None instead of raising.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from jaz.engine.durations import DurationError, parse_duration
from jaz.errors import JobnetInvalid, Problem

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class Collector:
    """Gathers problems for one file so that all of them are reported at once."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, message: str, *, job: str | None = None, field: str | None = None,
            line: int | None = None, column: int | None = None) -> None:
        self.problems.append(Problem(file=self.file, message=message, job=job, field=field,
                                     line=line, column=column))


def parse_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        line = int(m.group(1)) if m else None
        col = int(m.group(2)) if m else None
        msg = _TOML_POS.sub("", msg).strip()
        raise JobnetInvalid([Problem(file=file, message=f"TOML syntax error: {msg}",
                                     line=line, column=col)]) from None


def check_str(c: Collector, value: Any, *, job: str | None, field: str,
              allow_empty: bool = False) -> str | None:
    if not isinstance(value, str):
        c.add(f"expected a string, got {type_name(value)}", job=job, field=field)
        return None
    if not allow_empty and not value.strip():
        c.add("must not be empty", job=job, field=field)
        return None
    return value


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def check_duration(c: Collector, value: Any, *, job: str | None, field: str) -> float | None:
    try:
        return parse_duration(value)
    except DurationError as e:
        c.add(str(e), job=job, field=field)
        return None


def check_bool(c: Collector, value: Any, *, job: str | None, field: str) -> bool:
    if not isinstance(value, bool):
        c.add(f"expected true or false, got {type_name(value)}", job=job, field=field)
        return False
    return value


def scalar_str(c: Collector, value: Any, *, job: str | None, field: str) -> str | None:
    """Variables are strings; TOML numbers and booleans are accepted and stringified."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    c.add(f"expected a string or number, got {type_name(value)}", job=job, field=field)
    return None


def check_enum(c: Collector, value: Any, choices: tuple[str, ...], *, job: str | None,
          field: str) -> str | None:
    if value not in choices:
        c.add(f"expected one of {', '.join(map(repr, choices))}, got {value!r}",
              job=job, field=field)
        return None
    return str(value)


def check_table(c: Collector, value: Any, *, job: str | None, field: str) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        c.add(f"expected a table, got {type_name(value)}", job=job, field=field)
        return None
    return value


def check_unknown(c: Collector, keys: Any, allowed: set[str], *, job: str | None,
             where: str, prefix: str = "") -> None:
    for key in keys:
        if key not in allowed:
            hint = close_match(key, allowed)
            c.add(f"unknown key {key!r} in {where}"
                  + (f" (did you mean {hint!r}?)" if hint else ""), job=job, field=f"{prefix}{key}")


def close_match(word: str, choices: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.7)
    return found[0] if found else None
