"""Cron expressions in croniter's syntax, parsed into sets that answer two questions
fast: "does this date match?" and "at which seconds of a matching day?".

Five fields (minute hour day-of-month month day-of-week) or six, the sixth being
seconds as croniter reads it. Supported: `*`, `?`, numbers, names (jan-dec, sun-sat),
ranges `a-b`, steps `*/n`, `a-b/n`, `a/n`, lists, `L` (last day of the month), `nL`/`Ln`
(last weekday n of the month), `n#k` (k-th weekday n), and @yearly, @annually, @monthly,
@weekly, @daily, @midnight, @hourly. As in croniter (and Vixie cron), when both day
fields are restricted a day matches either of them.

The schedule module turns matching days and seconds into instants; this module knows
nothing of time zones, so daylight saving is handled in one place.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date

from jaz.engine.tomltext import quote

__all__ = ["Cron", "CronError", "parse_cron"]

_MONTHS = {name.lower(): i for i, name in enumerate(_calendar.month_abbr) if name}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#                 name            low high names
_FIELDS = (("minute", 0, 59, None), ("hour", 0, 23, None), ("day of month", 1, 31, None),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS), ("second", 0, 59, None))


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Cron:
    text: str
    seconds_of_day: tuple[int, ...]          # sorted
    months: frozenset[int]
    days: frozenset[int] | None              # None: unrestricted
    last_day: bool                           # `L` in the day-of-month field
    weekdays: frozenset[int] | None          # cron numbering: 0 = Sunday; None: unrestricted
    nth_weekdays: frozenset[tuple[int, int]]  # (weekday, k), k = -1 for the last one

    def matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = self._dom(day)
        dow = self._dow(day)
        if dom is None and dow is None:
            return True
        if dom is None or dow is None:
            return bool(dom if dow is None else dow)
        return dom or dow

    def _dom(self, day: date) -> bool | None:
        if self.days is None and not self.last_day:
            return None
        if self.days is not None and day.day in self.days:
            return True
        return self.last_day and day.day == _calendar.monthrange(day.year, day.month)[1]

    def _dow(self, day: date) -> bool | None:
        if self.weekdays is None and not self.nth_weekdays:
            return None
        wd = (day.weekday() + 1) % 7
        if self.weekdays is not None and wd in self.weekdays:
            return True
        if not self.nth_weekdays:
            return False
        k = (day.day - 1) // 7 + 1
        if (wd, k) in self.nth_weekdays:
            return True
        last = day.day + 7 > _calendar.monthrange(day.year, day.month)[1]
        return last and (wd, -1) in self.nth_weekdays


def parse_cron(text: str) -> Cron:
    source = text.strip()
    expanded = _ALIASES.get(source.lower(), source)
    if expanded.startswith("@"):
        import difflib

        near = difflib.get_close_matches(source.lower(), list(_ALIASES), n=1)
        hint = f" (did you mean {quote(near[0])}?)" if near else ""
        raise CronError(f"unknown shortcut {quote(source)}: use one of "
                        f"{', '.join(_ALIASES)}{hint}")
    parts = expanded.split()
    if len(parts) not in (5, 6):
        raise CronError(f"expected 5 fields (minute hour day month weekday) or 6 (with "
                        f"seconds last, as croniter reads it), got {len(parts)}")
    minutes = _field(parts[0], 0)
    hours = _field(parts[1], 1)
    days, last_day = _dom(parts[2])
    months = _field(parts[3], 3)
    weekdays, nth = _dow(parts[4])
    seconds = _field(parts[5], 5) if len(parts) == 6 else {0}
    if days is not None and not last_day and months is not None and weekdays is None \
            and not nth and \
            all(d > _max_days(months) for d in days):
        raise CronError(f"day of month {_show(days)} never occurs in month {_show(months)}: "
                        "pick a day that exists, or L for the last day of the month")
    return Cron(
        text=source,
        seconds_of_day=tuple(sorted(h * 3600 + m * 60 + s
                                    for h in hours or range(24)
                                    for m in minutes or range(60)
                                    for s in seconds or range(60))),
        months=frozenset(months or range(1, 13)), days=days, last_day=last_day,
        weekdays=weekdays, nth_weekdays=frozenset(nth))


def _max_days(months: frozenset[int]) -> int:
    return max(29 if m == 2 else _calendar.monthrange(2001, m)[1] for m in months)


def _show(values: frozenset[int]) -> str:
    return ",".join(map(str, sorted(values)))


def _field(text: str, index: int) -> frozenset[int] | None:
    """The values of one field; None when it is `*` or `?` (no restriction)."""
    name, low, high, names = _FIELDS[index]
    if text in ("*", "?") and (text == "*" or index in (2, 4)):
        return None
    values: set[int] = set()
    for item in text.split(","):
        # day of week: 7 is only another name for Sunday, so `*` and `a/n` run to 6
        # (croniter: `5/1` is Fri-Sat, not Fri-Sun)
        values |= _item(item, name, low, high, names, last=6 if index == 4 else high)
    if index == 4:
        values = {v % 7 for v in values}
    if text.startswith("*") and len(values) == (7 if index == 4 else high - low + 1):
        return None   # `*/1` is `*`; a written-out `1-31` still counts as a restriction (Vixie)
    return frozenset(values)


def _item(item: str, name: str, low: int, high: int,
          names: dict[str, int] | None, last: int) -> set[int]:
    if not item:
        raise CronError(f"empty entry in the {name} field: remove the extra comma")
    if item[0].upper() == "H" or item.upper().endswith("W"):   # not `wed`
        raise CronError(f"{quote(item)} in the {name} field: 'H' and 'W' are not supported; "
                        "use plain values, or a calendar with 'shift' for nearest weekdays")
    step = 1
    stepped = "/" in item
    if stepped:
        item, _, step_text = item.partition("/")
        step = _number(step_text, name, 1, max(high, 1), None, what="step")
    if item == "*":
        start, end = low, last
    elif "-" in item:
        a, _, b = item.partition("-")
        start, end = _number(a, name, low, high, names), _number(b, name, low, high, names)
        if start > end:
            raise CronError(f"range {quote(item)} in the {name} field goes backwards: write "
                            f"the lower value first, or two ranges like "
                            f"\"{a}-{high},{low}-{b}\"")
    else:
        start = _number(item, name, low, high, names)
        end = max(start, last) if stepped else start   # `a/n`: from a to the end, every n
    return set(range(start, end + 1, step))


def _number(text: str, name: str, low: int, high: int, names: dict[str, int] | None,
            what: str = "value") -> int:
    key = text.strip().lower()
    if names and key in names:
        return names[key]
    if not key.isdigit():
        expected = f"{low}-{high}" + (f" or a name like {next(iter(names))}" if names else "")
        raise CronError(f"bad {what} {quote(text)} in the {name} field: expected {expected}")
    value = int(key)
    if not low <= value <= high:
        raise CronError(f"{what} {value} is out of range in the {name} field ({low}-{high})")
    return value


def _dom(text: str) -> tuple[frozenset[int] | None, bool]:
    if text.upper() == "L":
        return frozenset(), True
    items = text.split(",")
    last = any(i.upper() == "L" for i in items)
    rest = ",".join(i for i in items if i.upper() != "L")
    days = _field(rest, 2) if rest else frozenset()
    if days is None:
        return None, False   # `*,L`: every day already
    return days, last


def _dow(text: str) -> tuple[frozenset[int] | None, set[tuple[int, int]]]:
    nth: set[tuple[int, int]] = set()
    plain: list[str] = []
    for item in text.split(","):
        upper = item.upper()
        if "#" in item:
            day, _, k = item.partition("#")
            wd = _number(day, "day of week", 0, 7, _DAYS) % 7
            nth.add((wd, _number(k, "day of week", 1, 5, None, what="occurrence")))
        elif len(item) > 1 and (upper.endswith("L") or upper.startswith("L")):
            day = item[:-1] if upper.endswith("L") else item[1:]
            nth.add((_number(day, "day of week", 0, 7, _DAYS) % 7, -1))
        else:
            plain.append(item)
    if not plain:
        return (frozenset() if nth else None), nth
    weekdays = _field(",".join(plain), 4)
    if weekdays is None and nth:
        return None, set()   # `*` plus extras: every day already
    return weekdays, nth
