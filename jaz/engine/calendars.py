"""Business calendars (SPEC §1.4): which dates are operating days.

A *base* calendar is operating weekdays, minus public holidays (the `holidays`
package), minus `exclude`, plus `include` (an included date is always operating: use
it for the exceptions inside an excluded range). A *filter* calendar picks days out
of another calendar: calendar days of the month with a `shift` when that day is
closed, or the Nth operating day of the month. Filters may be based on filters.

Everything here is a pure function of dates; each calendar memoises its operating
days per year, so asking about the same year again costs a set lookup.
"""

from __future__ import annotations

import bisect
import calendar as _calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jaz.engine.checks import (
    Collector,
    check_enum,
    check_str,
    check_unknown,
    close_matches,
    did_you_mean,
    got,
    parse_toml,
    quote,
    read_text_file,
)
from jaz.errors import JobnetInvalid, NotFound

__all__ = ["Calendar", "CalendarLibrary", "load_calendar_file", "looks_like_calendar",
           "operating_days"]

WEEKDAYS = {name: i for i, names in enumerate(
    (("mon", "monday"), ("tue", "tuesday"), ("wed", "wednesday"), ("thu", "thursday"),
     ("fri", "friday"), ("sat", "saturday"), ("sun", "sunday"))) for name in names}
BASE_KEYS = {"name", "description", "weekdays", "holidays", "include", "exclude"}
FILTER_KEYS = {"name", "description", "base", "day_of_month", "shift",
               "operating_day_of_month", "include", "exclude"}
CALENDAR_ONLY_KEYS = (BASE_KEYS | FILTER_KEYS) - {"name", "description"}
SHIFT_LIMIT = 62          # days a `shift` may move a day before it is dropped
_RANGE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})\s*")
_DATE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})\s*")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# a country, and a subdivision as the holidays package names it: "US-NY", "DE-Augsburg",
# "CH-Stadt Zurich", "DE-Bayern" (an alias)
_HOLIDAY_CODE = re.compile(r"([A-Za-z]{2,3})(?:-(\S(?:.*\S)?))?")


@dataclass(frozen=True, eq=False)
class Calendar:
    """One calendar, its base (if a filter) already resolved to a `Calendar`."""

    name: str
    path: Path | None = None
    description: str = ""
    weekdays: frozenset[int] = frozenset(range(5))   # date.weekday(): 0 = Monday
    holidays: tuple[str, ...] = ()                    # "JP", "DE-BY", "US-NY"
    include: tuple[tuple[date, date], ...] = ()       # inclusive ranges
    exclude: tuple[tuple[date, date], ...] = ()
    base: Calendar | None = None
    day_of_month: tuple[int, ...] = ()
    shift: str = "none"                               # previous | next | none
    operating_day_of_month: tuple[int, ...] = ()
    _years: dict[int, frozenset[date]] = field(default_factory=dict, repr=False)
    _sorted: dict[int, tuple[date, ...]] = field(default_factory=dict, repr=False)

    # ---- queries

    def is_operating(self, day: date) -> bool:
        return day in self.year(day.year)

    def year(self, year: int) -> frozenset[date]:
        """The operating days of one year, computed once."""
        days = self._years.get(year)
        if days is None:
            days = self._years[year] = frozenset(self._compute(year))
        return days

    def days_from(self, start: date, give_up: int = 366 * 30) -> Iterator[date]:
        """Operating days from `start` on, in order; it ends once `give_up` days pass
        without one (a calendar may have no operating days left)."""
        year, quiet = start.year, 0
        while quiet < give_up and year <= 9999:
            days = self._sorted.get(year)
            if days is None:
                days = self._sorted[year] = tuple(sorted(self.year(year)))
            begin = bisect.bisect_left(days, start) if year == start.year else 0
            if begin < len(days):
                quiet = 0
            else:
                quiet += 366
            yield from days[begin:]
            year += 1

    def holiday_names(self, year: int) -> dict[date, str]:
        """Named public holidays of this calendar and the calendars it is based on."""
        names: dict[date, str] = {}
        cal: Calendar | None = self
        while cal is not None:
            for code in cal.holidays:
                for day, name in _holidays(code, year).items():
                    names.setdefault(day, name)
            cal = cal.base
        return names

    def chain(self) -> list[Calendar]:
        """This calendar and its bases, nearest first."""
        out: list[Calendar] = []
        cal: Calendar | None = self
        while cal is not None:
            out.append(cal)
            cal = cal.base
        return out

    # ---- computation

    def _compute(self, year: int) -> set[date]:
        days = self._filtered(year) if self.base is not None else self._weekly(year)
        for lo, hi in self.exclude:
            days.difference_update(_span(max(lo, date(year, 1, 1)), min(hi, date(year, 12, 31))))
        for lo, hi in self.include:
            days.update(_span(max(lo, date(year, 1, 1)), min(hi, date(year, 12, 31))))
        return days

    def _weekly(self, year: int) -> set[date]:
        first = date(year, 1, 1)
        offsets = [(wd - first.weekday()) % 7 for wd in self.weekdays]
        length = 366 if _calendar.isleap(year) else 365
        start = first.toordinal()
        days = {date.fromordinal(start + o) for first_offset in offsets
                for o in range(first_offset, length, 7)}
        for code in self.holidays:
            days.difference_update(_holidays(code, year))
        return days

    def _filtered(self, year: int) -> set[date]:
        assert self.base is not None
        base = self.base
        days: set[date] = set()
        # months around the year too: a shifted day may cross into it
        for y, m in _months(year, margin=SHIFT_LIMIT // 28 + 1):
            last = _calendar.monthrange(y, m)[1]
            for n in self.day_of_month:
                number = n if n > 0 else last + 1 + n
                if not 1 <= number <= last:
                    continue   # e.g. the 31st of a 30-day month: that month has none
                day = _shifted(base, date(y, m, number), self.shift)
                if day is not None:
                    days.add(day)
            if self.operating_day_of_month:
                month_days = sorted(d for d in base.year(y) if d.month == m)
                for k in self.operating_day_of_month:
                    index = k - 1 if k > 0 else k
                    if -len(month_days) <= index < len(month_days):
                        days.add(month_days[index])
        return {d for d in days if d.year == year}


def operating_days(calendar: Calendar, start: date, end: date) -> list[date]:
    """The operating days from start to end, both included, in order."""
    out: list[date] = []
    for year in range(start.year, end.year + 1):
        out.extend(sorted(d for d in calendar.year(year) if start <= d <= end))
    return out


def _span(lo: date, hi: date) -> Iterator[date]:
    for ordinal in range(lo.toordinal(), hi.toordinal() + 1):
        yield date.fromordinal(ordinal)


def _months(year: int, margin: int) -> Iterator[tuple[int, int]]:
    for index in range(year * 12 - margin, year * 12 + 12 + margin):
        yield index // 12, index % 12 + 1


def _shifted(base: Calendar, day: date, shift: str) -> date | None:
    if base.is_operating(day):
        return day
    if shift == "none":
        return None
    step = timedelta(days=-1 if shift == "previous" else 1)
    for _ in range(SHIFT_LIMIT):
        day += step
        if base.is_operating(day):
            return day
    return None


# ------------------------------------------------------------------ public holidays

_HOLIDAY_CACHE: dict[tuple[str, int], dict[date, str]] = {}


def _holidays(code: str, year: int) -> dict[date, str]:
    """Holidays of a country code such as "JP" or "US-NY" (pure: cached per year)."""
    key = (code, year)
    found = _HOLIDAY_CACHE.get(key)
    if found is None:
        import holidays  # heavy (~100 ms); only calendars that name a country pay for it

        country, _, subdiv = code.partition("-")
        table = holidays.country_holidays(country.upper(), years=year,
                                          subdiv=_subdivision(country, subdiv) or None)
        found = _HOLIDAY_CACHE[key] = {d: name for d, name in table.items() if d.year == year}
    return found


def holiday_code_problem(code: str) -> str | None:
    """Why a holidays code is not usable, or None when the package knows it. The message
    quotes the code as written and names the nearest codes the package knows."""
    written = quote(code)
    code = code.strip()
    m = _HOLIDAY_CODE.fullmatch(code)
    form = "write a country code like \"JP\", or country-subdivision like \"US-NY\""
    if m is None:
        near = _nearest_countries(code)
        return (f"bad holidays code {written}: {form}"
                + (f" (nearest: {', '.join(map(quote, near))})" if near else ""))
    import holidays

    country, subdiv = m.group(1).upper(), m.group(2)
    supported = holidays.list_supported_countries()
    if country not in supported:
        near = _nearest_countries(m.group(1))
        return (f"unknown holidays code {written}: the holidays package has no country "
                f"{quote(m.group(1))}; use an ISO 3166 code"
                + (f" (nearest: {', '.join(map(quote, near))})" if near else
                   " such as \"JP\", \"DE\", \"US\", \"GB\", \"FR\""))
    known = sorted(supported[country])
    if subdiv is not None and _subdivision(country, subdiv) is None:
        if not known:
            return (f"unknown holidays code {written}: the holidays package has no "
                    f"subdivisions of {country}; use just {quote(country)}")
        near = close_matches(subdiv, known, n=3, cutoff=0.3)
        listed = ", ".join(known[:12]) + ("…" if len(known) > 12 else "")
        return (f"unknown holidays code {written}: {country} has no subdivision "
                f"{quote(subdiv)}"
                + (f" (nearest: {', '.join(quote(f'{country}-{n}') for n in near)})"
                   if near else "")
                + f"; its {len(known)} subdivisions are {listed}")
    return None


def _subdivision(country: str, subdiv: str) -> str | None:
    """The holidays package's own spelling of a subdivision or alias of `country`,
    whatever the case it is written in ("by" -> "BY", "augsburg" -> "Augsburg"); None
    when it has no such subdivision."""
    if not subdiv:
        return None
    import holidays

    try:
        cls = type(holidays.country_holidays(country.upper()))
    except NotImplementedError:
        return None
    names = [*getattr(cls, "subdivisions", ()), *getattr(cls, "subdivisions_aliases", {})]
    return next((n for n in names if n.casefold() == subdiv.strip().casefold()), None)


def _nearest_countries(text: str) -> list[str]:
    """The country codes nearest to `text`: by code ("XX" -> "XK"), or by the country's
    name ("germany" -> "DE")."""
    import holidays

    codes = [c for c in holidays.list_supported_countries() if len(c) == 2]
    if len(text) <= 3:
        return close_matches(text.upper(), codes, n=3, cutoff=0.0)
    names: dict[str, str] = {}
    try:   # the package's registry of countries: module name -> (class, alpha-2, ...)
        from holidays.registry import COUNTRIES

        for module, (cls, code, *_) in COUNTRIES.items():
            names.setdefault(module.replace("_", " "), code)
            names.setdefault(re.sub(r"(?<!^)(?=[A-Z])", " ", cls).lower(), code)
    except (ImportError, ValueError, TypeError):
        return []
    found = close_matches(text.replace("_", " ").replace("-", " ").lower(), names, n=3)
    return list(dict.fromkeys(names[f] for f in found))


# ------------------------------------------------------------------ loading


def looks_like_calendar(data: dict[str, Any], path: Path | None) -> bool:
    """Whether a parsed TOML file is a calendar rather than a jobnet."""
    if "jobs" in data:
        return False
    return bool(CALENDAR_ONLY_KEYS & set(data)) or (
        path is not None and path.parent.name == "calendars")


Resolve = Callable[[str, Path | None], "Calendar"]


class CalendarLibrary:
    """Finds calendars by name (SPEC §1.4) and loads each file once.

    A name is looked up next to the file that refers to it, in that folder's
    `calendars/` subfolder, then in the library's folders (the server's calendars
    folder); a reference ending in `.toml` is a path relative to the referring file.
    """

    def __init__(self, folders: tuple[Path, ...] = ()) -> None:
        self.folders = folders
        self._by_path: dict[Path, Calendar] = {}
        self._loading: list[Path] = []

    def get(self, ref: str, relative_to: Path | None = None) -> Calendar:
        return self.load(self.find(ref, relative_to))

    def find(self, ref: str, relative_to: Path | None = None) -> Path:
        here = relative_to.parent if relative_to is not None else Path.cwd()
        if ref.endswith(".toml"):
            p = (here / ref).resolve()
            if p.is_file():
                return p
            raise NotFound(f"calendar file {quote(ref)} not found (looked for {p})",
                           hint="give a path relative to the file that refers to it")
        looked: list[Path] = []
        # a server's layout: jobnets/ and calendars/ side by side (jaz init, $JAZ_HOME)
        sibling: tuple[Path, ...] = (here.parent / "calendars",) if here.name == "jobnets" \
            else ()
        for folder in (here, here / "calendars", *sibling, *self.folders):
            p = folder / f"{ref}.toml"
            looked.append(p)
            if p.is_file():
                return p.resolve()
        for folder in (here / "calendars", *sibling, *self.folders):
            named = self._named(folder, ref)
            if named is not None:
                return named
        raise NotFound(f"calendar {quote(ref)} not found (looked for "
                       f"{', '.join(str(p) for p in looked)})",
                       hint="put NAME.toml next to the jobnet or in its calendars/ folder, or "
                            "give a path ending in .toml")

    def _named(self, folder: Path, ref: str) -> Path | None:
        """A calendar file whose `name` differs from its file name."""
        if not folder.is_dir():
            return None
        for p in sorted(folder.glob("*.toml")):
            try:
                data = parse_toml(p.read_text(encoding="utf-8-sig"), str(p))
            except (OSError, UnicodeDecodeError, JobnetInvalid):
                continue
            if data.get("name") == ref:
                return p.resolve()
        return None

    def load(self, path: Path) -> Calendar:
        """The calendar in this file, its bases resolved (each file is read once)."""
        path = path.resolve()
        cached = self._by_path.get(path)
        if cached is not None:
            return cached
        if path in self._loading:
            cycle = [*self._loading[self._loading.index(path):], path]
            file = self._loading[-1]
            try:
                text: str | None = file.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                text = None
            c = Collector(str(file), text)
            c.add("calendars are based on each other in a cycle: "
                  + " -> ".join(p.stem for p in cycle) + "; base one of them on another "
                  "calendar", field="base")
            raise JobnetInvalid(c.problems)
        self._loading.append(path)
        try:
            calendar = load_calendar_file(path, self.get)
        finally:
            self._loading.pop()
        self._by_path[path] = calendar
        return calendar


def load_calendar_file(path: Path, resolve: Resolve | None = None) -> Calendar:
    text = read_text_file(path, missing="no such calendar file")
    return load_calendar_text(text, path=path, resolve=resolve)


def load_calendar_text(text: str, *, path: Path | None = None,
                       resolve: Resolve | None = None) -> Calendar:
    """Validate a calendar file, collecting every problem; `resolve` finds its base."""
    file = str(path) if path is not None else "<calendar>"
    data = parse_toml(text, file)
    c = Collector(file, text)
    is_filter = "base" in data
    allowed = FILTER_KEYS if is_filter else BASE_KEYS
    for key in data:
        if key not in allowed and key in (BASE_KEYS | FILTER_KEYS):
            c.add(f"{quote(key)} belongs in a base calendar; a filter calendar (one with "
                  f"base = ...) takes its days from its base: remove {quote(key)} or 'base'"
                  if is_filter else
                  f"{quote(key)} is for a filter calendar: add 'base = \"NAME\"' to pick days "
                  f"out of another calendar", field=key)
    check_unknown(c, [k for k in data if k not in BASE_KEYS | FILTER_KEYS], allowed,
                  job=None, where="the calendar")

    name = path.stem if path is not None else "calendar"
    if "name" in data:
        name = check_str(c, data["name"], job=None, field="name") or name
    if not _NAME.fullmatch(name):
        c.add(f"bad calendar name {quote(name)}: use letters, digits, \"_\", \"-\" and \".\"",
              field="name")
    kw: dict[str, Any] = {"name": name, "path": path.resolve() if path else None}
    if "description" in data:
        kw["description"] = check_str(c, data["description"], job=None, field="description",
                                      allow_empty=True) or ""
    if "weekdays" in data:
        kw["weekdays"] = _weekdays(c, data["weekdays"])
    if "holidays" in data:
        kw["holidays"] = _holiday_codes(c, data["holidays"])
    include = _dates(c, data.get("include", []), "include")
    exclude = _dates(c, data.get("exclude", []), "exclude")
    kw["include"], kw["exclude"] = include, exclude
    for lo, hi in include:
        if lo == hi and (lo, hi) in exclude:
            c.add(f"\"{lo.isoformat()}\" is both included and excluded: keep one",
                  field="include")

    if is_filter:
        kw.update(_filter(c, data))
        ref = check_str(c, data["base"], job=None, field="base")
        if ref is not None and not c.problems:
            if resolve is None:
                c.add(f"cannot resolve base calendar {quote(ref)} here", field="base")
            else:
                try:
                    kw["base"] = resolve(ref, path)
                except NotFound as e:
                    c.add(f"unknown base calendar {quote(ref)}: {e.message}"
                          + (f"; {e.hint}" if e.hint else ""), field="base")
                except JobnetInvalid as e:   # the base's own problems name its file
                    c.problems.extend(e.problems)
    if c.problems:
        raise JobnetInvalid(c.problems)
    return Calendar(**kw)


def _weekdays(c: Collector, raw: Any) -> frozenset[int]:
    if not isinstance(raw, list):
        c.add(f"expected a list of weekday names like [\"mon\", \"tue\"], got {got(raw)}",
              field="weekdays")
        return frozenset()
    out: set[int] = set()
    for i, item in enumerate(raw):
        key = item.strip().lower() if isinstance(item, str) else None
        if key not in WEEKDAYS:
            c.add(f"unknown weekday {quote(item)}: use \"mon\", \"tue\", \"wed\", \"thu\", "
                  f"\"fri\", \"sat\" or \"sun\"{did_you_mean(key or item, WEEKDAYS)}",
                  field=f"weekdays[{i}]")
            continue
        out.add(WEEKDAYS[key])
    return frozenset(out)


def _holiday_codes(c: Collector, raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        c.add(f"expected a country code like \"JP\" or a list of them like [\"DE\", "
              f"\"DE-BY\"], got {got(raw)}", field="holidays")
        return ()
    codes: list[str] = []
    for i, item in enumerate(items):
        problem = holiday_code_problem(item)
        if problem:
            c.add(problem, field="holidays" if isinstance(raw, str) else f"holidays[{i}]")
        else:
            country, _, subdiv = item.strip().partition("-")
            codes.append(country.upper() + (f"-{_subdivision(country, subdiv)}" if subdiv else ""))
    return tuple(codes)


def _dates(c: Collector, raw: Any, key: str) -> tuple[tuple[date, date], ...]:
    if not isinstance(raw, list):
        c.add(f"expected a list of dates (\"2026-12-26\") and ranges "
              f"(\"2026-12-30..2027-01-03\"), got {got(raw)}", field=key)
        return ()
    out: list[tuple[date, date]] = []
    for i, item in enumerate(raw):
        where = f"{key}[{i}]"
        if isinstance(item, date):   # a TOML date literal
            out.append((item, item))
            continue
        if not isinstance(item, str):
            c.add(f"expected a date string like \"2026-12-26\", got {got(item)}",
                  field=where)
            continue
        m = _RANGE.fullmatch(item) or _DATE.fullmatch(item)
        try:
            if m is None:
                raise ValueError(item)
            days = [date.fromisoformat(g) for g in m.groups() if g]
        except ValueError:
            c.add(f"bad date {quote(item)}: write it as \"YYYY-MM-DD\" (a real date), or "
                  f"\"FROM..TO\" for a range like \"2026-12-30..2027-01-03\"", field=where)
            continue
        if days[-1] < days[0]:
            c.add(f"range {quote(item)} ends before it starts: write the earlier date first",
                  field=where)
            continue
        out.append((days[0], days[-1]))
    return tuple(out)


def _filter(c: Collector, data: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if "day_of_month" not in data and "operating_day_of_month" not in data:
        c.add("a filter calendar needs 'day_of_month' or 'operating_day_of_month'",
              field="base")
    if "day_of_month" in data:
        kw["day_of_month"] = _day_numbers(c, data["day_of_month"], "day_of_month", 31)
        kw["shift"] = check_enum(c, data.get("shift", "none"), ("previous", "next", "none"),
                                 job=None, field="shift") or "none"
    elif "shift" in data:
        c.add("'shift' only applies to 'day_of_month'", field="shift")
    if "operating_day_of_month" in data:
        kw["operating_day_of_month"] = _day_numbers(c, data["operating_day_of_month"],
                                                    "operating_day_of_month", 31)
    return kw


def _day_numbers(c: Collector, raw: Any, key: str, most: int) -> tuple[int, ...]:
    items = [raw] if isinstance(raw, int) and not isinstance(raw, bool) else raw
    if not isinstance(items, list) or not items:
        c.add(f"expected a list of day numbers like [1, 15, -1], got {got(raw)}",
              field=key)
        return ()
    out: list[int] = []
    for i, n in enumerate(items):
        if isinstance(n, bool) or not isinstance(n, int) or n == 0 or not -most <= n <= most:
            c.add(f"expected a day number 1..{most} or -1..-{most} (-1 = the last), got "
                  f"{quote(n)}", field=f"{key}[{i}]")
            continue
        out.append(n)
    return tuple(dict.fromkeys(out))
