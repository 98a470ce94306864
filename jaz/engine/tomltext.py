"""TOML text for error messages: values quoted as TOML writes them (`quote`), and
where each key and value of a file is (`scan`), so that a problem found after parsing
("bad duration", "unknown key") can name its line.

`tomllib` gives values, not positions. The text is scanned again, only when a file
has a problem to report, into a map from key paths to spots: `("jobs", "load",
"timeout")`, `("schedule", 1, "cron")` (the second `[[schedule]]` table),
`("weekdays", 2)` (the third item of an array). The scan trusts that `tomllib` has
accepted the text already; if it meets something it does not follow it stops and
keeps what it found, so a problem is then reported without a line, never not at all.
"""

from __future__ import annotations

import bisect
import math
import re
import tomllib
from datetime import date, datetime, time
from typing import Any

from jaz.value import Value

__all__ = ["Spot", "field_path", "find", "quote", "quote_key", "scan", "type_name"]

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")
_INDEX = re.compile(r"\[(\d+)\]")
QUOTE_LIMIT = 80   # characters of a quoted value; longer ones end in …


def quote(value: Any) -> str:
    """A value as TOML writes it: a string in double quotes (escaped the TOML way), a
    number, true/false, an array, an inline table; cut to about QUOTE_LIMIT characters."""
    text = _toml(value)
    if len(text) > QUOTE_LIMIT:
        text = text[:QUOTE_LIMIT - 1] + "…"
    return text


def _string(text: str) -> str:
    import json  # only messages quote values: a run that goes well never does

    return json.dumps(text, ensure_ascii=False)   # a JSON string is a TOML basic string


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{quote_key(str(k))} = {_toml(v)}"
                                for k, v in value.items()) + " }"
    return repr(value)


def quote_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, else quoted."""
    return key if _BARE.fullmatch(key) else _string(key)   # whole: a key is never cut


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table", date: "a date", datetime: "a date-time",
            time: "a time"}.get(type(value), type(value).__name__)


class Spot(Value):
    """A key (or table header, or array item) of the text."""

    line: int          # 1-based
    value: int = -1    # offset of the value's first character in the text; -1: none

    def value_column(self, text: str, offset: int) -> int | None:
        """The 1-based column in the file of character `offset` (1-based) of a string
        value, when the value is a one-line string written without escapes before it;
        else None (the offset inside the value cannot be mapped onto the line)."""
        if self.value < 0 or offset < 1:
            return None
        quote = text[self.value:self.value + 1]
        if quote not in ("'", '"') or text.startswith(quote * 3, self.value):
            return None
        inner = text[self.value + 1:self.value + offset]
        if "\n" in inner or quote in inner or (quote == '"' and "\\" in inner):
            return None
        start = text.rfind("\n", 0, self.value) + 1
        return self.value - start + 1 + offset


class _Stop(Exception):
    """The scanner met text it does not follow."""


def field_path(field: str) -> Path:
    """A problem's field as a key path: "schedule[1].cron" -> ("schedule", 1, "cron")."""
    out: list[str | int] = []
    for part in field.split("."):
        cut = part.find("[")
        name = part if cut < 0 else part[:cut]
        if name:
            out.append(name)
        if cut >= 0:
            out.extend(int(n) for n in _INDEX.findall(part[cut:]))
    return tuple(out)


def find(spots: dict[Path, Spot], path: Path) -> Spot | None:
    """The spot of `path`, else of its longest prefix that is in the text."""
    for end in range(len(path), 0, -1):
        spot = spots.get(path[:end])
        if spot is not None:
            return spot
    return None


def scan(text: str) -> dict[Path, Spot]:
    """Every key path of a TOML text (that tomllib accepts) with its spot."""
    scanner = _Scanner(text)
    try:
        scanner.document()
    except (_Stop, IndexError, ValueError, tomllib.TOMLDecodeError):
        pass
    return scanner.found


class _Scanner:
    def __init__(self, text: str) -> None:
        self.t = text
        self.i = 0
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.found: dict[Path, Spot] = {}
        self.arrays: dict[Path, int] = {}    # [[a.b]] -> index of its last table

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def put(self, path: Path, at: int, value: int = -1) -> None:
        if path not in self.found:
            self.found[path] = Spot(line=self.line(at), value=value)

    # ---- statements

    def document(self) -> None:
        prefix: Path = ()
        t = self.t
        while True:
            self.skip(newlines=True)
            if self.i >= len(t):
                return
            start = self.i
            if t[start] == "[":
                double = t.startswith("[[", start)
                self.i += 2 if double else 1
                keys = self.key()
                self.skip()
                if not t.startswith("]]" if double else "]", self.i):
                    raise _Stop
                self.i += 2 if double else 1
                path = self.resolve(keys, new_array=double)
                if double:
                    index = self.arrays.get(path, -1) + 1
                    self.arrays[path] = index
                    path = (*path, index)
                for end in range(1, len(path) + 1):
                    self.put(path[:end], start)
                prefix = path
            else:
                keys = self.key()
                full = (*prefix, *keys)
                self.assign(full, start, len(prefix))
            self.skip()
            if self.i < len(t) and t[self.i] not in "\r\n":
                raise _Stop
            if self.i <= start:
                raise _Stop

    def resolve(self, keys: Path, *, new_array: bool) -> Path:
        """A header's path, with the index of the current table of each array of tables
        it goes through ([schedule.deadline] after [[schedule]] is in its last table)."""
        out: Path = ()
        for n, key in enumerate(keys):
            out = (*out, key)
            if out in self.arrays and not (new_array and n == len(keys) - 1):
                out = (*out, self.arrays[out])
        return out

    def assign(self, full: Path, start: int, known: int) -> None:
        """`key = value` at `start`; the first `known` parts of `full` are the table's."""
        self.skip()
        if self.t[self.i] != "=":
            raise _Stop
        self.i += 1
        self.skip()
        for end in range(known + 1, len(full)):
            self.put(full[:end], start)
        self.put(full, start, self.i)
        self.value(full)

    # ---- pieces

    def skip(self, *, newlines: bool = False) -> None:
        t, n = self.t, len(self.t)
        while self.i < n:
            c = t[self.i]
            if c in " \t" or (newlines and c in "\r\n"):
                self.i += 1
            elif c == "#":
                end = t.find("\n", self.i)
                self.i = n if end < 0 else end
            else:
                return

    def key(self) -> Path:
        keys: list[str | int] = []
        t = self.t
        while True:
            self.skip()
            c = t[self.i]
            if c == '"':
                end = self.basic_end(self.i)
                keys.append(tomllib.loads(f"k = {t[self.i:end]}")["k"])
                self.i = end
            elif c == "'":
                end = t.index("'", self.i + 1)
                keys.append(t[self.i + 1:end])
                self.i = end + 1
            else:
                m = _BARE.match(t, self.i)
                if m is None:
                    raise _Stop
                keys.append(m.group())
                self.i = m.end()
            self.skip()
            if self.i < len(t) and t[self.i] == ".":
                self.i += 1
                continue
            return tuple(keys)

    def basic_end(self, i: int) -> int:
        """The offset after a one-line basic string starting at `i`."""
        t = self.t
        j = i + 1
        while t[j] != '"':
            if t[j] == "\n":
                raise _Stop
            j += 2 if t[j] == "\\" else 1
        return j + 1

    def value(self, path: Path) -> None:
        t = self.t
        c = t[self.i]
        if c in "\"'":
            self.i = self.string_end(self.i)
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.skip(newlines=True)
                if t[self.i] == "]":
                    self.i += 1
                    return
                item = (*path, index)
                self.put(item, self.i, self.i)
                self.value(item)
                self.skip(newlines=True)
                if t[self.i] == ",":
                    self.i += 1
                index += 1
        elif c == "{":
            self.i += 1
            while True:
                self.skip(newlines=True)
                if t[self.i] == "}":
                    self.i += 1
                    return
                if t[self.i] == ",":
                    self.i += 1
                    continue
                start = self.i
                self.assign((*path, *self.key()), start, len(path))
        else:
            m = _SCALAR.match(t, self.i)
            assert m is not None   # it matches the empty string
            if m.end() == self.i:
                raise _Stop
            self.i = m.end()

    def string_end(self, i: int) -> int:
        t = self.t
        quote = t[i]
        if t.startswith(quote * 3, i):
            j = i + 3
            while True:
                if quote == '"' and t[j] == "\\":
                    j += 2
                    continue
                if t.startswith(quote * 3, j):
                    j += 3
                    for _ in range(2):   # up to two quotes may end the content
                        if t[j:j + 1] == quote:
                            j += 1
                    return j
                j += 1
        if quote == "'":
            return t.index("'", i + 1) + 1
        return self.basic_end(i)
