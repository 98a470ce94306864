"""When an operator means: the times of `jaz start --at`, `jaz retime` and the
dashboard's start dialog, parsed in one place for every face. `now` is an argument."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from jaz.errors import UsageError


def parse_at(text: str, now: datetime | None = None, what: str = "--at") -> datetime:
    """When `--at` means: "HH:MM[:SS]" (the next such time, today or tomorrow), an ISO
    date/time (without an offset: this machine's zone), or "+DURATION" from now."""
    from jaz.engine.clock import local_zone
    from jaz.engine.durations import DurationError, parse_duration
    from jaz.engine.tomltext import quote as quoted

    zone = local_zone()
    now = now or datetime.now(zone)
    text = text.strip()
    if text.startswith("+"):
        try:
            return now + timedelta(seconds=parse_duration(text[1:]))
        except DurationError:
            raise UsageError(f"bad {what} {quoted(text)}: after \"+\" give a duration like "
                             f"+10m, +2h or +1d") from None
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
    if m:
        hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise UsageError(f"bad {what} {quoted(text)}: no such time of day (hours go "
                             f"from 0 to 23, minutes and seconds from 0 to 59)")
        local = now.astimezone(zone)
        at = datetime(local.year, local.month, local.day, hour, minute, second, tzinfo=zone)
        return _tomorrow_if_past(at, now)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad {what} {quoted(text)}: use HH:MM, an ISO date/time like "
                         "2026-11-20T08:00, or +DURATION like +10m") from None
    return t if t.tzinfo else t.replace(tzinfo=zone)


def _tomorrow_if_past(at: datetime, now: datetime) -> datetime:
    if at > now:
        return at
    day = (at + timedelta(days=1)).date()     # wall-clock time of the next day
    return at.replace(year=day.year, month=day.month, day=day.day)
