"""When jobnets fire (SPEC §1.4): `[schedule]` tables parsed into `Schedule`s, bound to
a calendar and a zone, and turned into fire instants by pure functions of time.

Every rule works on the local wall clock of the schedule's zone and only then maps a
local time to an instant, in one place (`_instant`):
- a local time that does not exist (spring forward) fires at the first instant after
  the gap;
- a local time that occurs twice (fall back) fires once, at the first occurrence.
So `*/15 * * * *` fires at 03:00 once, not four times, on a spring-forward night, and
`every = "15m"` counts from each local midnight.

`next_fires(...)` and `fires_between(...)` take the time as an argument and never read
a clock; the server uses `fires_between` to list what it missed while it was down.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from jaz.engine.calendars import Calendar, CalendarLibrary
from jaz.engine.checks import (
    Collector,
    check_duration,
    check_enum,
    check_str,
    check_unknown,
    close_matches,
    got,
    quote,
)
from jaz.engine.cron import Cron, CronError, parse_cron
from jaz.errors import JobnetInvalid, NotFound, Problem

__all__ = ["BoundSchedule", "Fire", "Schedule", "bind", "bind_jobnet", "deadlines", "fires_between",
           "iter_fires",
           "next_fires", "parse_schedules"]

SCHEDULE_KEYS = {"cron", "times", "every", "calendar", "timezone", "window", "overlap",
                 "catchup", "catchup_window", "deadline"}
DAY = 86400
HORIZON_DAYS = 366 * 30      # a schedule with no fire in this many days never fires
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


class Fire(NamedTuple):
    """One fire; ordered by instant (a tuple: millions are made when planning ahead)."""

    at: datetime            # an aware instant, in the schedule's zone
    schedule: int           # which [[schedule]] entry
    day: date               # the operating day it belongs to (25:30 → the day before)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """One `[schedule]` table, validated. Seconds are counted from local midnight."""

    index: int = 0
    where: str = "schedule"                   # its field in the file: schedule[1]
    cron: Cron | None = None
    times: tuple[int, ...] = ()               # may pass 86400: the next calendar day
    every: int | None = None                  # seconds
    calendar: str | None = None
    timezone: str | None = None
    windows: tuple[tuple[int, int], ...] = ()  # [start, end); end < start crosses midnight
    overlap: str = "skip"
    catchup: str = "latest"
    catchup_window: float | None = None
    start_by: tuple[str, int] | None = None   # ("at", seconds of the day) | ("after", s)
    finish_by: tuple[str, int] | None = None

    def describe(self) -> str:
        if self.cron is not None:
            rule = f"cron {self.cron.text}"
        elif self.times:
            rule = "at " + ", ".join(format_clock(t) for t in self.times)
        else:
            rule = f"every {_format_every(self.every or 0)}"
        if self.calendar:
            rule += f" on {self.calendar}"
        if self.windows:
            rule += " within " + ", ".join(
                f"{format_clock(a)}-{format_clock(b)}" for a, b in self.windows)
        return rule


@dataclass(frozen=True)
class BoundSchedule:
    """A schedule with its calendar resolved and its zone chosen: ready to compute."""

    schedule: Schedule
    zone: tzinfo
    calendar: Calendar | None = None


def bind(schedules: Iterable[Schedule], zone: tzinfo,
         calendar: Callable[[str], Calendar]) -> tuple[BoundSchedule, ...]:
    """Resolve each schedule's zone (its own `timezone`, else `zone`) and calendar."""
    from zoneinfo import ZoneInfo

    return tuple(BoundSchedule(
        schedule=s, zone=ZoneInfo(s.timezone) if s.timezone else zone,
        calendar=calendar(s.calendar) if s.calendar else None) for s in schedules)


class Scheduled(Protocol):
    """What `bind_jobnet` reads of a jobnet (the model's `Jobnet` is one): the model
    builds on schedules, so schedules do not import the model."""

    @property
    def path(self) -> Path | None: ...

    @property
    def schedules(self) -> tuple[Schedule, ...]: ...

    @property
    def text(self) -> str: ...


def bind_jobnet(jobnet: Scheduled, zone: tzinfo,
                library: CalendarLibrary | None = None) -> tuple[BoundSchedule, ...]:
    """A jobnet's schedules with their calendars looked up next to the jobnet (and in
    the library's folders); an unknown or broken calendar is a problem of the jobnet's
    file at `schedule.calendar`."""
    library = library or CalendarLibrary()
    problems: list[Problem] = []
    found: dict[str, Calendar] = {}
    file = str(jobnet.path) if jobnet.path else "<jobnet>"
    c = Collector(file, jobnet.text)
    for s in jobnet.schedules:
        if s.calendar is None or s.calendar in found:
            continue
        try:
            found[s.calendar] = library.get(s.calendar, jobnet.path)
        except NotFound as e:
            c.add(f"unknown calendar {quote(s.calendar)}: {e.message}"
                  + (f"; {e.hint}" if e.hint else ""), field=f"{s.where}.calendar")
        except JobnetInvalid as e:
            c.add(f"calendar {quote(s.calendar)} is invalid (see below)",
                  field=f"{s.where}.calendar")
            c.problems.extend(e.problems)
    problems.extend(c.problems)
    if problems:
        raise JobnetInvalid(problems)
    return bind(jobnet.schedules, zone, found.__getitem__)


# ------------------------------------------------------------------ fires


def next_fires(schedules: Sequence[BoundSchedule], after: datetime, n: int) -> list[Fire]:
    """The next `n` fires strictly after `after`, merged in time order, no duplicates."""
    out: list[Fire] = []
    for fire in _merged(schedules, after, None):
        out.append(fire)
        if len(out) >= n:
            break
    return out


def iter_fires(schedules: Sequence[BoundSchedule], start: datetime,
               end: datetime) -> Iterator[Fire]:
    """The fires with start < at <= end, lazily: take only as many as needed."""
    return _merged(schedules, start, end)


def fires_between(schedules: Sequence[BoundSchedule], start: datetime,
                  end: datetime) -> list[Fire]:
    """Every fire with start < at <= end: what a server that was down missed."""
    return list(_merged(schedules, start, end))


def deadlines(bound: BoundSchedule, fire: Fire) -> tuple[datetime | None, datetime | None]:
    """The (start_by, finish_by) instants of one fire, when the schedule has a deadline.

    A clock time belongs to the fire's operating day; when that is before the fire,
    the next day's is meant (a 23:00 fire with finish_by 05:00 ends by 05:00 next day).
    """
    def resolve(spec: tuple[str, int] | None) -> datetime | None:
        if spec is None:
            return None
        kind, seconds = spec
        if kind == "after":
            return fire.at + timedelta(seconds=seconds)
        at = _instant(fire.day, seconds, bound.zone)
        while at < fire.at:
            seconds += DAY
            at = _instant(fire.day, seconds, bound.zone)
        return at

    return resolve(bound.schedule.start_by), resolve(bound.schedule.finish_by)


def _merged(schedules: Sequence[BoundSchedule], after: datetime,
            until: datetime | None) -> Iterator[Fire]:
    last: datetime | None = None
    streams = [_fires(b, after, until) for b in schedules]
    for fire in heapq.merge(*streams) if len(streams) != 1 else streams[0]:
        if fire.at != last:   # two schedules (or a DST gap) on the same instant: once
            last = fire.at
            yield fire


def _fires(b: BoundSchedule, after: datetime, until: datetime | None) -> Iterator[Fire]:
    """One schedule's fires in time order, after `after` and up to `until`.

    Most days have no daylight-saving transition: their fires are the local midnight
    plus fixed offsets, already filtered by the window; days with a transition take
    the exact path (`_instant`, then the window). Times past 24:00 spill into the next
    day, so then a day's fires wait in a heap until the next midnight, when no earlier
    one can come.
    """
    s, zone, index = b.schedule, b.zone, b.schedule.index
    seconds = s.cron.seconds_of_day if s.cron is not None else s.times or \
        _every(s.every or DAY)
    plain_seconds, plain, spill = _plain(seconds, s.windows)
    local_after = after.astimezone(zone)
    first = local_after.date()
    last = until.astimezone(zone).date() if until is not None else date.max
    near_last = last - timedelta(days=spill) if last > date.min + timedelta(days=spill) \
        else date.min
    quiet_until = first + timedelta(days=HORIZON_DAYS)
    pending: list[Fire] = []
    one_day = timedelta(days=1)
    unsafe_year, unsafe = 0, frozenset[date]()
    for day in _days(b, first - timedelta(days=spill), last):
        if day > last or day > quiet_until:
            break
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        if day.year != unsafe_year:
            unsafe_year, unsafe = day.year, _unsafe_days(zone, day.year, spill)
        fires: Iterable[Fire]
        if not spill and day > first and day < near_last and day not in unsafe:
            # the common day: every offset fires, no bound to check (delegated in C)
            if plain:
                quiet_until = day + timedelta(days=HORIZON_DAYS)
                yield from (Fire(midnight + delta, index, day) for delta in plain)
            continue
        if day in unsafe:
            fires = (Fire(at, index, day) for at in (_instant(day, sec, zone) for sec in seconds)
                     if not s.windows or in_window(s.windows, at))
        elif day == first and not spill:   # skip to the first second after `after`
            wall = (local_after.replace(tzinfo=None) - midnight.replace(tzinfo=None))
            start = bisect.bisect_right(plain_seconds, wall.total_seconds())
            fires = (Fire(midnight + plain[i], index, day)   # no copy, no walk to `start`
                     for i in range(start, len(plain)))
        else:
            fires = (Fire(midnight + delta, index, day) for delta in plain)
        if day <= first and (day in unsafe or spill):
            fires = (f for f in fires if f.at > after)
        if day >= near_last:   # a day's fires are in order: stop at the first too late
            fires = itertools.takewhile(lambda f: f.at <= until, fires)  # type: ignore[operator]
        if not spill:   # lazily: a cron with seconds has 86,400 fires a day
            fired = False
            for fire in fires:
                fired = True
                yield fire
            if fired:
                quiet_until = day + timedelta(days=HORIZON_DAYS)
            continue
        fires = list(fires)
        if fires:
            quiet_until = day + timedelta(days=HORIZON_DAYS)
        for fire in fires:
            heapq.heappush(pending, fire)
        horizon = midnight + one_day            # no later day fires before its midnight
        while pending and pending[0].at < horizon:
            yield heapq.heappop(pending)
    while pending:
        yield heapq.heappop(pending)


_PLAIN: dict[tuple[int, tuple[tuple[int, int], ...]],
             tuple[tuple[int, ...], tuple[int, ...], tuple[timedelta, ...], int]] = {}


def _plain(seconds: tuple[int, ...], windows: tuple[tuple[int, int], ...]
           ) -> tuple[tuple[int, ...], tuple[timedelta, ...], int]:
    """A schedule's seconds of the day that its windows let through, the same as
    timedeltas, and how many days its latest time spills past its day (`times` may
    pass 24:00): computed once per schedule (a cron with seconds has 86,400, and a
    `max` over them at every look cost ~1.5 ms). Tuples, not lists: the garbage
    collector stops tracking a tuple of ints or timedeltas after its first look, while
    each full collection walked every item of a list (~40 ms with 1,000 such caches,
    and it fell on fire instants)."""
    key = (id(seconds), windows)
    hit = _PLAIN.get(key)
    if hit is None or hit[0] is not seconds:
        if len(_PLAIN) > 4096:
            _PLAIN.clear()
        kept = tuple(sec for sec in seconds
                     if not windows or _in_window_seconds(windows, sec % DAY))
        hit = _PLAIN[key] = (seconds, kept, tuple(timedelta(seconds=sec) for sec in kept),
                             max(seconds) // DAY)
    return hit[1], hit[2], hit[3]


@functools.lru_cache(maxsize=256)
def _every(interval: int) -> tuple[int, ...]:
    return tuple(range(0, DAY, interval))


_CHANGES: dict[tuple[tzinfo, int], frozenset[date]] = {}


def _unsafe_days(zone: tzinfo, year: int, spill: int) -> frozenset[date]:
    """Days of `year` whose fires (up to `spill` days later) may meet a change of UTC
    offset, so they cannot be computed as midnight + a fixed offset."""
    changes: set[date] = set()
    for y in (year, year + 1):
        found = _CHANGES.get((zone, y))
        if found is None:
            found = _CHANGES[(zone, y)] = _change_days(zone, y)
        changes |= found
    return frozenset(d - timedelta(days=i) for d in changes for i in range(spill + 1))


def _change_days(zone: tzinfo, year: int) -> frozenset[date]:
    """Days of a year whose next midnight has another UTC offset (pure, so cached)."""
    start = date(year, 1, 1)
    if year >= date.max.year:
        return frozenset()
    end = date(year + 1, 1, 1)
    offsets = [datetime(d.year, d.month, d.day, tzinfo=zone).utcoffset()
               for d in (start + timedelta(days=i) for i in range((end - start).days + 1))]
    return frozenset(start + timedelta(days=i) for i in range(len(offsets) - 1)
                     if offsets[i] != offsets[i + 1])


def _days(b: BoundSchedule, start: date, last: date = date.max) -> Iterator[date]:
    """The days a schedule may fire on, from `start` up to `last`: the calendar's
    operating days (or every day) that its cron allows. The bound matters to a cron
    that allows few days (a yearly one): its next day may be months away, and a walk
    there on every look at the next 24 hours cost ~0.2 ms (idle CPU with thousands)."""
    cron = b.schedule.cron
    candidates: Iterable[date]
    if b.calendar is not None:
        candidates = itertools.takewhile(lambda day: day <= last,
                                         b.calendar.days_from(start, HORIZON_DAYS))
    else:
        room = (date(9999, 12, 31) - start).days - 2 * HORIZON_DAYS
        if last < date.max:
            room = min(room, (last - start).days + 1)
        candidates = (start + timedelta(days=i) for i in range(max(room, 0)))
    if cron is None:
        yield from candidates
    else:
        yield from (day for day in candidates if cron.matches(day))


def _in_window_seconds(windows: tuple[tuple[int, int], ...], t: int) -> bool:
    return any((a <= t < b) if a < b else (t >= a or t < b) for a, b in windows)


def in_window(windows: tuple[tuple[int, int], ...], at: datetime) -> bool:
    """Whether the local time of `at` (in its own zone) is inside one of the windows."""
    return _in_window_seconds(windows, at.hour * 3600 + at.minute * 60 + at.second)


def _instant(day: date, seconds: int, zone: tzinfo) -> datetime:
    """Local wall time → instant, with SPEC §1.4's daylight-saving rules."""
    naive = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
    at = naive.replace(tzinfo=zone)                       # fold=0: the first occurrence
    if at.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return at
    return _after_gap(naive, zone)


def _after_gap(naive: datetime, zone: tzinfo) -> datetime:
    """The first instant after the gap that swallowed `naive`: the transition itself."""
    before = naive.replace(tzinfo=zone, fold=0).utcoffset()
    after = naive.replace(tzinfo=zone, fold=1).utcoffset()
    assert before is not None and after is not None
    epoch = datetime(1970, 1, 1)
    lo = int((naive - after - epoch).total_seconds())    # before the transition
    hi = int((naive - before - epoch).total_seconds())   # at or after it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC).astimezone(zone)


# ------------------------------------------------------------------ parsing


def parse_schedules(c: Collector, raw: Any) -> tuple[Schedule, ...]:
    """The `schedule` key of a jobnet: one table or a list of them."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        field = "schedule" if not isinstance(raw, list) else f"schedule[{i}]"
        if not isinstance(item, dict):
            c.add(f"expected a table like {{ cron = \"30 2 * * *\" }}, got {got(item)}",
                  field=field)
            continue
        schedule = _schedule(c, item, field, i)
        if schedule is not None:
            out.append(schedule)
    return tuple(out)


def _schedule(c: Collector, table: dict[str, Any], field: str, index: int) -> Schedule | None:
    before = len(c.problems)
    check_unknown(c, table, SCHEDULE_KEYS, job=None, where=field, prefix=f"{field}.")
    rules = [k for k in ("cron", "times", "every") if k in table]
    if not rules:
        c.add("a schedule needs one of 'cron', 'times' or 'every'", field=field)
    elif len(rules) > 1:
        c.add(f"a schedule takes one of 'cron', 'times' or 'every', found "
              f"{' and '.join(map(repr, rules))}: use one [[schedule]] table for each",
              field=field)
    kw: dict[str, Any] = {"index": index, "where": field}
    if "cron" in table:
        text = check_str(c, table["cron"], job=None, field=f"{field}.cron")
        if text is not None:
            try:
                kw["cron"] = parse_cron(text)
            except CronError as e:
                c.add(f"bad cron {quote(text)}: {e}", field=f"{field}.cron")
    if "times" in table:
        kw["times"] = _times(c, table["times"], f"{field}.times")
    if "every" in table:
        every = check_duration(c, table["every"], job=None, field=f"{field}.every")
        if every is not None:
            if not 1 <= every <= DAY or every != int(every):
                c.add(f"'every' must be a whole number of seconds from \"1s\" to \"24h\", "
                      f"got {quote(table['every'])}", field=f"{field}.every")
            else:
                kw["every"] = int(every)
    if "calendar" in table:
        kw["calendar"] = check_str(c, table["calendar"], job=None, field=f"{field}.calendar")
    if "timezone" in table:
        kw["timezone"] = _zone(c, table["timezone"], f"{field}.timezone")
    if "window" in table:
        kw["windows"] = _windows(c, table["window"], f"{field}.window")
    for key, choices in (("overlap", ("allow", "skip", "wait", "replace")),
                         ("catchup", ("none", "latest", "all"))):
        if key in table:
            kw[key] = check_enum(c, table[key], choices, job=None, field=f"{field}.{key}")
    if "catchup_window" in table:
        kw["catchup_window"] = check_duration(c, table["catchup_window"], job=None,
                                              field=f"{field}.catchup_window")
    if "deadline" in table:
        kw.update(_deadline(c, table["deadline"], f"{field}.deadline"))
    if len(c.problems) > before:
        return None
    return Schedule(**{k: v for k, v in kw.items() if v is not None})


def _zone(c: Collector, raw: Any, field: str) -> str | None:
    import zoneinfo

    name = check_str(c, raw, job=None, field=field)
    if name is None:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):   # "America": a folder
        near = close_matches(name, zoneinfo.available_timezones())
        hint = f" (nearest: {', '.join(map(quote, near))})" if near else ""
        c.add(f"unknown time zone {quote(name)}: use an IANA name like \"Asia/Tokyo\" or "
              f"\"Europe/Berlin\"{hint}", field=field)
        return None
    return name


def parse_clock(text: str, *, most: int) -> int:
    """Seconds from midnight of "HH:MM" or "HH:MM:SS", up to `most` seconds."""
    m = _CLOCK.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"bad time {quote(text)}: write it as \"HH:MM\" or \"HH:MM:SS\"")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if mi > 59 or s > 59:
        raise ValueError(f"bad time {quote(text)}: minutes and seconds go up to 59")
    seconds = h * 3600 + mi * 60 + s
    if seconds > most:
        raise ValueError(f"time {quote(text)} is too late: the latest is "
                         f"{quote(format_clock(most))}")
    return seconds


def format_clock(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _format_every(seconds: int) -> str:
    from jaz.engine.durations import format_duration

    return format_duration(seconds)


def _times(c: Collector, raw: Any, field: str) -> tuple[int, ...] | None:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        c.add(f"expected a list of times like [\"02:30\", \"25:30\"], got {got(raw)}",
              field=field)
        return None
    out: list[int] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            c.add(f"expected a time string like \"02:30\", got {got(item)}",
                  field=f"{field}[{i}]")
            continue
        try:   # past 24:00 belongs to the operating day before (JAZ); up to 47:59:59
            out.append(parse_clock(item, most=2 * DAY - 1))
        except ValueError as e:
            c.add(str(e), field=f"{field}[{i}]")
    return tuple(sorted(set(out))) or None


def _windows(c: Collector, raw: Any, field: str) -> tuple[tuple[int, int], ...] | None:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        c.add(f"expected a window like \"08:00-18:00\" or a list of them, got {got(raw)}",
              field=field)
        return None
    out: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        where = field if isinstance(raw, str) else f"{field}[{i}]"
        a, sep, b = item.partition("-") if isinstance(item, str) else ("", "", "")
        try:
            if not sep:
                raise ValueError(f"bad window {quote(item)}: write it as START-END like "
                                 "\"08:00-18:00\" (\"22:00-02:00\" crosses midnight)")
            start, end = parse_clock(a, most=DAY - 1), parse_clock(b, most=DAY)
        except ValueError as e:
            message = str(e)
            if sep:
                message += f" (in window {quote(item)})"
            c.add(message, field=where)
            continue
        if start == end % DAY:
            if end == DAY and start == 0:
                out.append((0, DAY))
                continue
            c.add(f"window {quote(item)} is empty: its start and end are the same time",
                  field=where)
            continue
        out.append((start, end))
    return tuple(out) or None


def _deadline(c: Collector, raw: Any, field: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        c.add(f"expected a table like {{ start_by = \"02:45\", finish_by = \"05:00\" }}, got "
              f"{got(raw)}", field=field)
        return {}
    check_unknown(c, raw, {"start_by", "finish_by"}, job=None, where=field,
                  prefix=f"{field}.")
    out: dict[str, Any] = {}
    for key in ("start_by", "finish_by"):
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, str) and ":" in value:
            try:
                out[key] = ("at", parse_clock(value, most=2 * DAY - 1))
            except ValueError as e:
                c.add(str(e), field=f"{field}.{key}")
        else:   # a duration after the fire: "15m"
            seconds = check_duration(c, value, job=None, field=f"{field}.{key}")
            if seconds is not None:
                out[key] = ("after", int(seconds))
    return out
