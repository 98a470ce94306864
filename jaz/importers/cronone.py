"""`jaz import crontab --one` for a crontab whose entries fire at different times.

A jobnet's schedules start the whole jobnet, and a job does not know which schedule
fired. So the jobnet gets one `[[schedule]]` for each distinct time of the crontab (the
fires of two schedules at the same minute are one run, as cron starts both entries in
that minute), a first job `cron_time` that publishes the time the run was scheduled for
(`$JAZ_SCHEDULED_TIME`, in the server's zone) as its output `AT`, and each entry's job
an `if` that holds exactly when its own cron line matches `AT`: the minute and hour by
a pattern on the time, the month and day of month by a pattern on the date, the weekday
with `weekday()`; the day of month and the weekday ORed or ANDed as cron does. A job
whose time has not come is skipped.

Only times in the server's zone can be told apart this way (expressions cannot change
zones), so entries under CRON_TZ are refused here, with the way out said.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from jaz.errors import Problem


class Entry(Protocol):
    """What is needed of a crontab entry (crontab.Entry; not imported: it imports this)."""

    @property
    def line(self) -> int: ...
    @property
    def cron(self) -> str: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def calendar_weekdays(self) -> tuple[int, ...] | None: ...

__all__ = ["TIME_JOB", "refusals", "time_job", "when"]

TIME_JOB = "cron_time"
_WEEKDAY_WORDS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")   # cron's numbering


def refusals(entries: Sequence[Entry], source: str) -> list[Problem]:
    """The entries --one cannot join when their schedules differ: those under CRON_TZ."""
    return [Problem(
        file=source, line=e.line,
        message=f"--one joins entries that fire at different times by testing the time "
                f"each run was scheduled for, which jaz gives in the server's zone; this "
                f"entry runs under CRON_TZ={e.env['CRON_TZ']}, which jaz cannot tell apart "
                "that way: drop --one (one jobnet per entry), or put the entries under "
                "CRON_TZ in a crontab of their own")
        for e in entries if e.env.get("CRON_TZ")]


def time_job() -> list[str]:
    """The first job of such a jobnet: the run's scheduled time as its output AT."""
    return [f"[jobs.{TIME_JOB}]",
            "description = \"the time this run was scheduled for, which the jobs' if test\"",
            "run = 'echo \"AT=$JAZ_SCHEDULED_TIME\" >> \"$JAZ_OUTPUT\"'"]


def _alternatives(values: list[int], width: int = 2) -> str:
    return "(" + "|".join(f"{v:0{width}d}" for v in values) + ")"


def when(e: Entry) -> str:
    """The `if` of an entry's job: true exactly at the minutes its cron line fires."""
    from jaz.engine.cron import parse_cron

    cron = parse_cron(e.cron)
    at = f"{TIME_JOB}.AT"
    parts: list[str] = []
    hours = sorted({s // 3600 for s in cron.seconds_of_day})
    minutes = sorted({s % 3600 // 60 for s in cron.seconds_of_day})
    hh = "[0-9][0-9]" if len(hours) == 24 else _alternatives(hours)
    mm = "[0-9][0-9]" if len(minutes) == 60 else _alternatives(minutes)
    if len(hours) < 24 or len(minutes) < 60:
        parts.append(f"{at} matches 'T{hh}:{mm}:'")
    if len(cron.months) < 12:
        parts.append(f"{at} matches '^[0-9]+-{_alternatives(sorted(cron.months))}-'")
    dom = f"{at} matches '^[0-9]+-[0-9]+-{_alternatives(sorted(cron.days))}T'" \
        if cron.days is not None else None
    dow = _weekdays(at, cron.weekdays) if cron.weekdays is not None else None
    if dom and dow:   # both restricted: a day matching either (cron's rule)
        parts.append(f"({dom} or {dow})")
    elif dom or dow:
        parts.append(dom or dow or "")
    if e.calendar_weekdays is not None:   # a day field starting with '*': both must match
        parts.append(_weekdays(at, frozenset(e.calendar_weekdays)))
    return " and ".join(parts) or "true"


def _weekdays(at: str, days: frozenset[int]) -> str:
    words = ", ".join(f"'{_WEEKDAY_WORDS[d % 7]}'" for d in sorted({d % 7 for d in days}))
    return f"weekday({at}) in [{words}]"
