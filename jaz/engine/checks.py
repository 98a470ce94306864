"""Checks shared by the loaders of TOML inputs (jobnets, calendars, server configs).

A `Collector` gathers every problem of one file, so that all of them are reported at
once; the `check_*` helpers add a problem and return None instead of raising.

Every message quotes the bad value as it is written in TOML (`quote`: "5 minutes" in
double quotes, 5, true, [1, 2]), says what is expected and, for names, the nearest
known ones; the Collector adds the file's line from the job and field (see
jaz/engine/tomltext.py), so messages never repeat where they are.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from jaz.engine.durations import DurationError, parse_duration
from jaz.engine.tomltext import quote, quote_key, type_name
from jaz.errors import JobnetInvalid, NotFound, Problem

if TYPE_CHECKING:
    from pathlib import Path

    from jaz.engine.tomltext import Path as KeyPath
    from jaz.engine.tomltext import Spot

__all__ = ["Collector", "check_bool", "check_duration", "check_enum", "check_str",
           "check_table", "check_unknown", "close_match", "did_you_mean", "got", "one_of",
           "parse_toml", "quote", "quote_key", "scalar_str", "type_name"]

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class Collector:
    """Gathers problems for one file so that all of them are reported at once.

    Given the file's `text`, each problem gets the line of its field (or of the
    nearest key above it that is written: a missing key is reported at its table);
    a job's fields are under `[jobs.NAME]`. A `column` given to `add` is one inside
    the field's string value (an expression's); it becomes a column of the file when
    the value is a plain one-line string, else it is left to the message.
    """

    def __init__(self, file: str, text: str | None = None) -> None:
        self.file = file
        self.text = text
        self.problems: list[Problem] = []
        self._spots: dict[KeyPath, Spot] | None = None

    def add(self, message: str, *, job: str | None = None, field: str | None = None,
            line: int | None = None, column: int | None = None) -> None:
        spot = self.spot(job, field) if line is None else None
        if spot is not None:
            line = spot.line
            assert self.text is not None
            column = spot.value_column(self.text, column) if column is not None else None
        elif line is None:
            column = None
        self.problems.append(Problem(file=self.file, message=message, job=job, field=field,
                                     line=line, column=column))

    def spot(self, job: str | None, field: str | None) -> Spot | None:
        """Where the field is written (its key, else the nearest written key above it)."""
        if self.text is None:
            return None
        from jaz.engine.tomltext import field_path, find, scan

        if self._spots is None:
            self._spots = scan(self.text)
        path: KeyPath = ("jobs", job) if job is not None else ()
        if field is not None:
            path = (*path, *field_path(field))
        return find(self._spots, path) if path else None

    def line(self, job: str | None, field: str | None) -> int | None:
        spot = self.spot(job, field)
        return spot.line if spot is not None else None


def read_text_file(path: Path, *, missing: str, hint: str | None = None) -> str:
    """The text of a config file (a BOM that editors add is dropped): `NotFound` with
    `missing` and `hint` when there is no such file, `JobnetInvalid` when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFound(f"{path}: {missing}", hint=hint) from None
    except (OSError, UnicodeDecodeError) as e:
        raise JobnetInvalid([Problem(file=str(path), message=f"cannot read file: {e}")]) \
            from None


def parse_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        line = int(m.group(1)) if m else None
        col = int(m.group(2)) if m else None
        msg = _TOML_POS.sub("", msg).strip()
        lines = text.splitlines()
        if line is not None and 0 < line <= len(lines) and lines[line - 1].strip():
            written = lines[line - 1].strip()
            written = written if len(written) <= 80 else written[:79] + "…"
            msg += f", in: {written}"
        raise JobnetInvalid([Problem(file=file, message=f"TOML syntax error: {msg}",
                                     line=line, column=col)]) from None


def got(value: Any) -> str:
    """The value found, for a message about its type: `5 (an integer)`."""
    return f"{quote(value)} ({type_name(value)})"


def one_of(choices: Iterable[str]) -> str:
    """`"halt", "stop"`: the valid values, quoted."""
    return ", ".join(quote(c) for c in choices)


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """` (did you mean "name"?)`, or "" when no choice is close."""
    hint = close_match(word, set(choices)) if isinstance(word, str) else None
    return f" (did you mean {quote(hint)}?)" if hint else ""


def check_str(c: Collector, value: Any, *, job: str | None, field: str,
              allow_empty: bool = False) -> str | None:
    if not isinstance(value, str):
        fix = f": write it in quotes, {quote(quote(value))}" \
            if isinstance(value, int | float) else ""
        c.add(f"expected a string, got {got(value)}{fix}", job=job, field=field)
        return None
    if not allow_empty and not value.strip():
        c.add(f"must not be empty, got {quote(value)}", job=job, field=field)
        return None
    return value


def check_duration(c: Collector, value: Any, *, job: str | None, field: str) -> float | None:
    try:
        return parse_duration(value)
    except DurationError as e:
        c.add(str(e), job=job, field=field)
        return None


def check_bool(c: Collector, value: Any, *, job: str | None, field: str) -> bool:
    if not isinstance(value, bool):
        c.add(f"expected true or false (without quotes), got {got(value)}", job=job,
              field=field)
        return False
    return value


def scalar_str(c: Collector, value: Any, *, job: str | None, field: str) -> str | None:
    """Variables are strings; TOML numbers and booleans are accepted and stringified."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    c.add(f"expected a string or number, got {got(value)}", job=job, field=field)
    return None


def check_enum(c: Collector, value: Any, choices: tuple[str, ...], *, job: str | None,
               field: str) -> str | None:
    if value is None:
        c.add(f"missing: give one of {one_of(choices)}", job=job, field=field)
        return None
    if value not in choices:
        c.add(f"expected one of {one_of(choices)}, got {quote(value)}"
              + did_you_mean(value, choices), job=job, field=field)
        return None
    return str(value)


def check_table(c: Collector, value: Any, *, job: str | None, field: str,
                like: str | None = None) -> dict[str, Any] | None:
    """A table; `like` is an example of the table for the message."""
    if not isinstance(value, dict):
        example = f" like {like}" if like else ""
        c.add(f"expected a table{example}, got {got(value)}", job=job, field=field)
        return None
    return value


def check_unknown(c: Collector, keys: Any, allowed: set[str], *, job: str | None,
                  where: str, prefix: str = "") -> None:
    for key in keys:
        if key not in allowed:
            hint = did_you_mean(key, allowed) or \
                f"; known keys are {', '.join(sorted(allowed))}"
            c.add(f"unknown key {quote(key)} in {where}{hint}", job=job,
                  field=f"{prefix}{key}")


def close_match(word: str, choices: set[str], *, cutoff: float = 0.7) -> str | None:
    found = close_matches(word, choices, n=1, cutoff=cutoff)
    return found[0] if found else None


def close_matches(word: str, choices: Iterable[str], *, n: int = 3,
                  cutoff: float = 0.6) -> list[str]:
    """The known names nearest to `word`, nearest first; case does not count."""
    import difflib

    by_folded: dict[str, str] = {}
    for choice in sorted(choices):
        by_folded.setdefault(choice.lower(), choice)
    found = difflib.get_close_matches(word.lower(), list(by_folded), n=n, cutoff=cutoff)
    return [by_folded[f] for f in found]
