"""A pgAgent schedule as jaz schedules and calendars.

pgAgent (`pgagent.pga_next_schedule`) fires at every minute whose minute, hour, month,
day of month and weekday are ticked in the schedule's boolean arrays (an array with
nothing ticked means "any"; day 32 is the last day of the month), from `jscstart` to
`jscend`, except at the exceptions: a date and a time (that one fire), a date (that
day) or a time (that time every day). The day of month and the weekday must both
match, where cron takes either. Times are local to the database server's TimeZone.

jaz says the same with cron expressions (one per group of hours that share their
minutes) and, where needed, calendars: one with the weekdays and the closed dates
(before the start, after the end, the date exceptions), and date-list calendars for the
days whose times differ (the start day, the end day, a day with a date+time exception).
The start is pgAgent's first fire, found as pga_next_schedule finds it (pgnext.py): its
search does not always take the first ticked minute after `jscstart`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

__all__ = ["PgSchedule", "Translated", "translate"]

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")   # pgAgent's order
_ALL_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class PgSchedule:
    id: int
    name: str
    start: datetime                     # aware
    end: datetime | None
    minutes: tuple[bool, ...]           # 60
    hours: tuple[bool, ...]             # 24
    weekdays: tuple[bool, ...]          # 7, Sunday first
    monthdays: tuple[bool, ...]         # 32, the last one = last day of the month
    months: tuple[bool, ...]            # 12
    exceptions: tuple[tuple[date | None, time | None], ...] = ()


@dataclass
class Translated:
    schedules: list[dict[str, str]] = field(default_factory=list)   # cron, calendar
    calendars: dict[str, str] = field(default_factory=dict)         # name -> TOML text
    notes: list[str] = field(default_factory=list)


def _ticked(flags: tuple[bool, ...], first: int = 0) -> list[int]:
    return [i + first for i, on in enumerate(flags) if on]


def _field(values: list[int], low: int, high: int) -> str:
    """A cron field: `*` for everything, else ranges and numbers."""
    if not values or values == list(range(low, high + 1)):
        return "*"
    parts: list[str] = []
    run_start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(run_start) if run_start == prev else
                     f"{run_start},{prev}" if prev == run_start + 1 else f"{run_start}-{prev}")
        if v is not None:
            run_start = prev = v
    return ",".join(parts)


def _crons(times: set[tuple[int, int]], days: str) -> list[str]:
    """Cron expressions for a set of (hour, minute) on the days of `days` (the last three
    fields): one per group of hours with the same minutes."""
    by_hour: dict[int, list[int]] = {}
    for h, m in sorted(times):
        by_hour.setdefault(h, []).append(m)
    groups: dict[tuple[int, ...], list[int]] = {}
    for h, minutes in by_hour.items():
        groups.setdefault(tuple(minutes), []).append(h)
    return [f"{_field(list(minutes), 0, 59)} {_field(hours, 0, 23)} {days}"
            for minutes, hours in sorted(groups.items(), key=lambda kv: kv[1][0])]


def _calendar_text(name: str, comment: str, weekdays: list[str], include: list[str],
                   exclude: list[str]) -> str:
    from jaz.importers import basic

    lines = [f"# written by `jaz import pgagent`: {comment}", f"name = {basic(name)}",
             f"weekdays = [{', '.join(basic(w) for w in weekdays)}]"]
    if include:
        lines.append(f"include = [{', '.join(basic(d) for d in include)}]")
    if exclude:
        lines.append(f"exclude = [{', '.join(basic(d) for d in exclude)}]")
    return "\n".join(lines) + "\n"


def translate(s: PgSchedule, zone: tzinfo, now: datetime, calendar_prefix: str
              ) -> Translated:
    """jaz schedules (cron + calendar path relative to the jobnet) for fires after `now`."""
    out = Translated()
    start = s.start.astimezone(zone).replace(second=0, microsecond=0)
    end = s.end.astimezone(zone) if s.end is not None else None
    today = now.astimezone(zone).date()
    if end is not None and end < now:
        out.notes.append(f"ended on {end.isoformat(' ', 'minutes')}: nothing left to schedule")
        return out
    if start > now:   # pgAgent's first fire, found as pga_next_schedule finds it
        from jaz.importers.pgnext import PgAgentFails, first_fire

        try:
            first = first_fire(
                start=start.replace(tzinfo=None),
                end=end.replace(tzinfo=None) if end is not None else None,
                minutes=s.minutes, hours=s.hours, weekdays=s.weekdays,
                monthdays=s.monthdays, months=s.months, exceptions=s.exceptions)
        except PgAgentFails as e:
            out.notes.append(f"{e}: not carried over")
            return out
        if first is None:
            out.notes.append("never fires: its first time would be after its end")
            return out
        # after its first fire pgAgent finds the plain next ticked minute each time
        start = first.replace(tzinfo=zone)

    if not any((*s.minutes, *s.hours, *s.weekdays, *s.monthdays, *s.months)):
        out.notes.append("nothing is ticked: jaz fires every minute, where pgAgent's "
                         "pga_next_schedule skips a minute after each run")
    minutes = _ticked(s.minutes) or list(range(60))
    hours = _ticked(s.hours) or list(range(24))
    months = _ticked(s.months, 1)
    days = _ticked(s.monthdays[:31], 1)
    last = len(s.monthdays) > 31 and s.monthdays[31]
    weekdays = _ticked(s.weekdays)   # 0 = Sunday, as in cron
    if last and days:
        # pga_next_schedule honours the last-day flag only when no other day is ticked
        out.notes.append("'last day of the month' is ticked with other days, which "
                         "pgAgent then ignores (its pga_next_schedule); so does jaz")
        last = False

    times = {(h, m) for h in hours for m in minutes}
    dated: dict[date, set[time]] = {}
    closed: list[date] = []
    for day, at in s.exceptions:
        if at is not None and (at.second or at.microsecond):
            out.notes.append(f"the exception at {at.isoformat()} never matches (pgAgent "
                             "fires on whole minutes): left out")
            continue
        if day is not None and day < today:
            continue   # in the past: it can no longer matter
        if day is None and at is not None:
            times.discard((at.hour, at.minute))
        elif day is not None and at is None:
            closed.append(day)
        elif day is not None and at is not None:
            dated.setdefault(day, set()).add(at)

    dom = "L" if last else _field(days, 1, 31)
    month = _field(months, 1, 12)
    both = dom != "*" and bool(weekdays) and len(weekdays) < 7
    dow = "*" if both or not weekdays else _field(weekdays, 0, 6)
    day_fields = f"{dom} {month} {dow}"

    # the days whose times differ from the rest: the start day, the end day, and days
    # with a date+time exception
    special: dict[date, set[tuple[int, int]]] = {}
    if start > now and (start.hour, start.minute) != (0, 0):
        special[start.date()] = {t for t in times if t >= (start.hour, start.minute)}
    if end is not None and (end.hour, end.minute) != (23, 59):
        base = special.get(end.date(), times)
        special[end.date()] = {t for t in base if t <= (end.hour, end.minute)}
    for day, ats in dated.items():
        base = special.get(day, times)
        special[day] = base - {(a.hour, a.minute) for a in ats}

    exclude: list[str] = [d.isoformat() for d in sorted(set(closed))]
    if start > now:   # the start day itself is open, or one of the special days
        exclude.append(f"1970-01-01..{(start.date() - timedelta(days=1)).isoformat()}")
    if end is not None:
        exclude.append(f"{(end.date() + timedelta(days=1)).isoformat()}..9999-12-31")
    exclude += [d.isoformat() for d in sorted(special)]

    main_calendar = None
    if both or exclude:
        name = calendar_prefix
        wd = [_WEEKDAYS[w] for w in weekdays] if both else _ALL_WEEKDAYS
        out.calendars[name] = _calendar_text(
            name, f"the days of pgAgent schedule {s.id} ({s.name})", wd, [], exclude)
        main_calendar = name
    for cron in _crons(times, day_fields):
        item = {"cron": cron}
        if main_calendar:
            item["calendar"] = f"calendars/{main_calendar}.toml"
        out.schedules.append(item)

    # special days, grouped by their times; only those the day rules let through
    from jaz.engine.cron import parse_cron

    matcher = parse_cron(f"0 0 {dom} {month} *")
    groups: dict[frozenset[tuple[int, int]], list[date]] = {}
    for day, ts in sorted(special.items()):
        if day < today or not ts or (end is not None and day > end.date()) or \
                (start > now and day < start.date()) or day in closed:
            continue
        if not matcher.matches(day) or (weekdays and (day.weekday() + 1) % 7 not in weekdays):
            continue
        groups.setdefault(frozenset(ts), []).append(day)
    for k, (group, dates) in enumerate(groups.items(), 1):
        name = f"{calendar_prefix}-days{k}"
        out.calendars[name] = _calendar_text(
            name, f"days of pgAgent schedule {s.id} ({s.name}) with times of their own",
            [], [d.isoformat() for d in dates], [])
        for cron in _crons(set(group), "* * *"):
            out.schedules.append({"cron": cron, "calendar": f"calendars/{name}.toml"})
    if not out.schedules:
        out.notes.append("never fires again: nothing to schedule")
    return out
