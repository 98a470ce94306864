"""Durations ("90s", "1h30m", 45) and JAZ stop-code ranges ("1-9,255").

The lowest of the engine's modules: the model, checks and schedules build on it."""

from __future__ import annotations

import math
import re

from jaz.engine.tomltext import quote
from jaz.value import Value

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
DURATION_FORMAT = ("write it like \"90s\", \"30m\", \"4h\", \"1d\", \"1h30m\" or a number "
                   "of seconds")
STOP_CODES_FORMAT = "write exit codes and ranges from 0 to 255, like \"1-255\" or \"1,3,5-9\""


class DurationError(ValueError):
    pass


class StopCodes(Value):
    """Exit codes that mean failure (JAZ stop codes); `None` ranges mean 'any non-zero'."""

    ranges: tuple[tuple[int, int], ...]
    source: str

    def failed(self, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in self.ranges)


def parse_duration(value: object) -> float:
    """Seconds for a TOML duration value; raises DurationError with a fix-it message."""
    if isinstance(value, bool):
        raise DurationError(f"expected a duration, got {quote(value)}: {DURATION_FORMAT}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise DurationError(f"a duration must be a finite number of seconds, got "
                                f"{quote(value)}: {DURATION_FORMAT}")
        if value < 0:
            raise DurationError(f"a duration cannot be negative, got {quote(value)}: "
                                f"{DURATION_FORMAT}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.isdigit():
            return float(text)
        if text and _WHOLE.fullmatch(text):
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    hint = ""
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*[A-Za-z]+\s*", value):
        hint = " (the units are ms, s, m, h and d, in lower case)"
    raise DurationError(f"bad duration {quote(value)}: {DURATION_FORMAT}{hint}")


def format_duration(seconds: float) -> str:
    """Short human form used in tables: 0.4s, 12s, 3m05s, 2h10m."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def parse_stop_codes(value: object) -> StopCodes:
    """JAZ stop codes: "1-255", "1,3,10-20" or a single integer."""
    written = value
    if isinstance(value, bool):
        raise DurationError(f"expected exit codes, got {quote(value)}: {STOP_CODES_FORMAT}")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise DurationError(f"expected exit codes, got {quote(written)}: {STOP_CODES_FORMAT}")

    def within(part: str) -> str:
        return "" if part == value.strip() else f" in {quote(written)}"

    ranges: list[tuple[int, int]] = []
    for part in value.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        shown = quote(part) if within(part) else quote(written)
        if not m:
            raise DurationError(f"bad stop code {shown}{within(part)}: {STOP_CODES_FORMAT}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if lo > hi:
            raise DurationError(f"reversed range {shown}{within(part)}: write it low-high, "
                                f"as in \"{hi}-{lo}\"")
        if hi > 255:
            raise DurationError(f"stop codes go from 0 to 255, got {shown}{within(part)}")
        ranges.append((lo, hi))
    return StopCodes(ranges=tuple(ranges), source=value)
