"""pgAgent's `pga_next_schedule`, step for step, for a schedule's first fire.

pgAgent does not fire at "the first ticked minute after jscstart": its PL/pgSQL search
(pgagent.sql, `pga_next_schedule`) carries the start's minute into the next ticked hour
or day when it moves on to one. A schedule starting at 09:10 with minutes 0 and 30 of
hour 11 first fires at 11:30, not 11:00; a start on a day whose weekday is not ticked
carries the minute of the candidate it found into the next day. Once a run has fired
(and the next search starts a minute after it), the search finds the plain next ticked
minute again, so only the first fire needs this: `translate` lets the schedule start at
the minute this function finds.

The function works on local wall-clock times (pgAgent's `timestamp` variables, in the
database's TimeZone), with PostgreSQL's 1-based arrays, as the original does.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

__all__ = ["PgAgentFails", "first_fire"]

_MINUTE, _DAY = timedelta(minutes=1), timedelta(days=1)
_MAX_STEPS = 200_000   # pgAgent loops for ever on a schedule that can never fire


class PgAgentFails(ValueError):
    """pga_next_schedule itself fails (a date like April 31) or never ends."""


def _on(flags: Sequence[bool], i: int) -> bool:
    """flags[i] of a PostgreSQL array (1-based; out of range is NULL, not true)."""
    return 1 <= i <= len(flags) and bool(flags[i - 1])


def _scan(flags: Sequence[bool], start: int, stop: int) -> int | None:
    """The first i in start..stop-1 with flags[i] ticked (pgAgent's FOR ... EXIT loops)."""
    return next((i for i in range(start, stop) if _on(flags, i)), None)


def _days_in(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _last_day_only(monthdays: Sequence[bool]) -> bool:
    return len(monthdays) == 32 and monthdays[31] and not any(monthdays[:31])


def first_fire(*, start: datetime, end: datetime | None, minutes: Sequence[bool],
               hours: Sequence[bool], weekdays: Sequence[bool], monthdays: Sequence[bool],
               months: Sequence[bool],
               exceptions: Sequence[tuple[date | None, time | None]]) -> datetime | None:
    """The first fire at or after `start` (naive, local, whole minute), or None past
    `end` (naive, local): what pga_next_schedule answers when the start is in the future.
    """
    ra = start.replace(second=0, microsecond=0)   # runafter
    foundval = daytweak = minutetweak = False
    for _ in range(_MAX_STEPS):
        year, month = ra.year, ra.month
        # the month: the first ticked from this one, else wrap into the next year
        found = _scan(months, month, 13)
        if found is None and (found := _scan(months, 1, ra.month)) is not None:
            year += 1
        if found is not None:
            month, foundval = found, True
        # the day: the lowest in a later month, else the first from today, else wrap
        if year > ra.year or month > ra.month:
            found, day = _scan(monthdays, 1, 33), 1
        else:
            day = ra.day
            found = _scan(monthdays, ra.day, 33)
            if found is None and (found := _scan(monthdays, 1, ra.day)) is not None:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if found is not None:
            day, foundval = found, True
        if day == 32:
            day = _days_in(year, month)
        # the hour: the lowest on a later day, else the first from this one, else wrap
        if year > ra.year or month > ra.month or day > ra.day or daytweak:
            found, hour = _scan(hours, 1, 25), 0
        else:
            hour = ra.hour
            found = _scan(hours, ra.hour + 1, 25)
            if found is None and (found := _scan(hours, 1, ra.hour + 1)) is not None:
                year, month, day = _next_day(year, month, day)
        if found is not None:
            hour, foundval = found - 1, True
        # the minute: in a later hour pgAgent starts from the start's minute (less one),
        # not from 0 -- the reason for this module
        if year > ra.year or month > ra.month or day > ra.day or hour > ra.hour or daytweak:
            found, minute = _scan(minutes, 1 if minutetweak else ra.minute, 61), 0
        else:
            minute = ra.minute
            found = _scan(minutes, ra.minute + 1, 61)
            if found is None and (found := _scan(minutes, 1, ra.minute + 1)) is not None:
                if hour == 23:
                    hour = 0
                    year, month, day = _next_day(year, month, day)
                else:
                    hour += 1
        if found is not None:
            minute, foundval = found - 1, True
        try:
            nextrun = datetime(year, month, day, hour, minute)
        except ValueError:
            raise PgAgentFails(f"pgAgent's own pga_next_schedule fails on this schedule "
                               f"(it builds the date {year}-{month}-{day})") from None
        if nextrun == ra and not foundval:
            nextrun += _MINUTE
        if end is not None and nextrun > end:
            return None
        if _valid(nextrun, minutes, hours, monthdays, months):
            if _on(weekdays, (nextrun.weekday() + 1) % 7 + 1) or not any(weekdays):
                if any(_excepted(nextrun, d, t) for d, t in exceptions):
                    ra, minutetweak, daytweak = nextrun + _MINUTE, True, False
                else:
                    return nextrun
            else:
                ra, minutetweak, daytweak = nextrun + _DAY, False, True
        else:
            ra, minutetweak, daytweak = nextrun + _MINUTE, True, False
    raise PgAgentFails("pgAgent's own pga_next_schedule never finds a time for this schedule")


def _next_day(year: int, month: int, day: int) -> tuple[int, int, int]:
    if day == _days_in(year, month):
        return (year + 1, 1, 1) if month == 12 else (year, month + 1, 1)
    return year, month, day + 1


def _valid(at: datetime, minutes: Sequence[bool], hours: Sequence[bool],
           monthdays: Sequence[bool], months: Sequence[bool]) -> bool:
    """pgAgent's check that a wrapped candidate is still a ticked time (its quirk kept:
    with only "last day" ticked, 28 February counts in a leap year too)."""
    day_ok = not any(monthdays) or _on(monthdays, at.day)
    if not day_ok and _last_day_only(monthdays):
        if at.month == 2:
            day_ok = (calendar.isleap(at.year) and at.day == 29) or at.day == 28
        else:
            day_ok = at.day == _days_in(at.year, at.month)
    return ((not any(minutes) or _on(minutes, at.minute + 1))
            and (not any(hours) or _on(hours, at.hour + 1)) and day_ok
            and (not any(months) or _on(months, at.month)))


def _excepted(at: datetime, day: date | None, clock: time | None) -> bool:
    same_day, same_time = day == at.date(), clock == at.time()
    return (same_day and same_time) or (same_day and clock is None) or \
        (day is None and same_time)
