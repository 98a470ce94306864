"""`[schedule]` tables (SPEC §1, §1.4): parsing, and when they fire.

The expected instants are written out by hand with their offsets, from the time zone
rules of each place (the dates of its daylight-saving changes), so a test fails when
the code computes something else. Daylight saving per SPEC §1.4: a local time that
does not exist fires at the first instant after the gap; a local time that occurs
twice fires once, at the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jaz.engine.calendars import Calendar, CalendarLibrary
from jaz.engine.checks import Collector
from jaz.engine.schedules import (
    BoundSchedule,
    Fire,
    bind,
    deadlines,
    fires_between,
    next_fires,
    parse_schedules,
)

FILE = "nets/nightly.toml"


def no_calendar(name: str) -> Calendar:
    raise AssertionError(f"no calendar expected, asked for {name!r}")


def bound(raw: Any, zone: str = "UTC", calendar: Any = no_calendar) -> tuple[BoundSchedule, ...]:
    c = Collector(FILE)
    schedules = parse_schedules(c, raw)
    assert c.problems == []
    return bind(schedules, ZoneInfo(zone), calendar)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def iso(fires: list[Fire]) -> list[str]:
    return [f.at.isoformat() for f in fires]


def upcoming(raw: Any, zone: str, after: str, n: int, calendar: Any = no_calendar) -> list[str]:
    fires = next_fires(bound(raw, zone, calendar), at(after), n)
    assert len({f.at for f in fires}) == len(fires), "a fire came twice"
    assert [f.at for f in fires] == sorted(f.at for f in fires)
    return iso(fires)


# ------------------------------------------------------------------ parsing

MALFORMED: list[tuple[Any, list[tuple[str, str]]]] = [
    ({}, [("schedule", "needs one of 'cron', 'times' or 'every'")]),
    ({"cron": "0 0 * *"}, [("schedule.cron", "expected 5 fields")]),
    ({"cron": "0 25 * * *"}, [("schedule.cron", "out of range in the hour field (0-23)")]),
    ({"cron": 5}, [("schedule.cron", "expected a string")]),
    ({"cron": "@daily", "times": ["01:00"]},
     [("schedule", "use one [[schedule]] table for each")]),
    ({"times": ["24:60"]}, [("schedule.times[0]", "minutes and seconds go up to 59")]),
    ({"times": ["02:30", "9.30"]}, [("schedule.times[1]", 'write it as "HH:MM"')]),
    ({"times": [930]}, [("schedule.times[0]", 'expected a time string like "02:30"')]),
    ({"times": ["48:00"]}, [("schedule.times[0]", 'the latest is "47:59:59"')]),
    ({"times": 2}, [("schedule.times", 'expected a list of times like ["02:30", "25:30"]')]),
    ({"times": []}, [("schedule.times", 'like ["02:30", "25:30"], got [] (a list)')]),
    ({"every": "0s"}, [("schedule.every", 'from "1s" to "24h", got "0s"')]),
    ({"every": "2d"}, [("schedule.every", 'from "1s" to "24h", got "2d"')]),
    ({"every": "soon"}, [("schedule.every", 'write it like "90s", "30m"')]),
    ({"cron": "@daily", "timezone": "Mars/Olympus"},
     [("schedule.timezone", 'use an IANA name like "Asia/Tokyo"')]),
    ({"cron": "@daily", "timezone": "America"},   # a tzdata folder, not a zone
     [("schedule.timezone", 'use an IANA name like "Asia/Tokyo"')]),
    ({"cron": "@daily", "window": "08:00"}, [("schedule.window", 'like "08:00-18:00"')]),
    ({"cron": "@daily", "window": ["08:00-18:00", "25:00-26:00"]},
     [("schedule.window[1]", 'the latest is "23:59:59"')]),
    ({"cron": "@daily", "window": "08:00-08:00"}, [("schedule.window", "is empty")]),
    ({"cron": "@daily", "window": 8}, [("schedule.window", 'like "08:00-18:00"')]),
    ({"cron": "@daily", "window": []}, [("schedule.window", "got [] (a list)")]),
    ({"cron": "@daily", "overlap": "sometimes"},
     [("schedule.overlap", 'expected one of "allow", "skip", "wait", "replace"')]),
    ({"cron": "@daily", "catchup": "maybe"},
     [("schedule.catchup", 'expected one of "none", "latest", "all"')]),
    ({"cron": "@daily", "catchup_window": "soon"},
     [("schedule.catchup_window", 'write it like "90s"')]),
    ({"cron": "@daily", "deadline": "05:00"},
     [("schedule.deadline", 'expected a table like { start_by = "02:45"')]),
    ({"cron": "@daily", "deadline": {"start_by": "25:61"}},
     [("schedule.deadline.start_by", "minutes and seconds go up to 59")]),
    ({"cron": "@daily", "deadline": {"finish": "05:00"}},
     [("schedule.deadline.finish", 'did you mean "finish_by"?')]),
    ({"cron": "@daily", "cronn": "x"}, [("schedule.cronn", 'did you mean "cron"?')]),
    ({"cron": "@daily", "calendar": ""}, [("schedule.calendar", "must not be empty")]),
    ("0 0 * * *", [("schedule", "expected a table")]),
    ([{"cron": "@daily"}, 5], [("schedule[1]", "expected a table")]),
    ([{"cron": "@daily"}, {"times": ["02:00"], "window": "x"}],
     [("schedule[1].window", 'write it as START-END like "08:00-18:00"')]),
    # several problems: every one is reported
    ({"times": ["25:00", "99:00"], "window": "1-2", "overlap": 1, "timezone": "Nowhere"},
     [("schedule.times[1]", 'the latest is "47:59:59"'),
      ("schedule.window", 'write it as "HH:MM"'),
      ("schedule.overlap", "expected one of"),
      ("schedule.timezone", "use an IANA name")]),
    ([{"cron": "61 * * * *"}, {"every": "1h", "deadline": {"start_by": "x:y"}}],
     [("schedule[0].cron", "minute field (0-59)"),
      ("schedule[1].deadline.start_by", 'write it as "HH:MM"')]),
]


@pytest.mark.parametrize(("raw", "expected"), MALFORMED, ids=[repr(m[0])[:60] for m in MALFORMED])
def test_malformed_schedule_names_each_field(raw: Any, expected: list[tuple[str, str]]) -> None:
    c = Collector(FILE)
    parse_schedules(c, raw)
    assert sorted(str(p.field) for p in c.problems) == sorted(field for field, _ in expected)
    words = dict(expected)
    for problem in c.problems:
        assert words[str(problem.field)] in problem.message
        assert problem.file == FILE
        assert problem.job is None


def test_good_schedule_is_parsed_into_seconds() -> None:
    c = Collector(FILE)
    [s] = parse_schedules(c, {"times": ["25:30", "02:30", "02:30"], "calendar": "biz",
                              "timezone": "Asia/Tokyo", "window": ["22:00-02:00"],
                              "overlap": "wait", "catchup": "all", "catchup_window": "6h",
                              "deadline": {"start_by": "02:45", "finish_by": "1h"}})
    assert c.problems == []
    assert s.times == (2 * 3600 + 1800, 25 * 3600 + 1800)
    assert s.windows == ((22 * 3600, 2 * 3600),)
    assert (s.calendar, s.timezone, s.overlap, s.catchup) == ("biz", "Asia/Tokyo", "wait", "all")
    assert s.catchup_window == 6 * 3600
    assert (s.start_by, s.finish_by) == (("at", 2 * 3600 + 45 * 60), ("after", 3600))


# ------------------------------------------------------------------ daylight saving

DST = [
    # Europe/Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST; 02:00-02:59 do not exist
    ({"cron": "*/15 * * * *"}, "Europe/Berlin", "2026-03-29T01:30:00+01:00",
     ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"]),
    ({"every": "15m"}, "Europe/Berlin", "2026-03-29T01:30:00+01:00",
     ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"]),
    ({"cron": "30 2 * * *"}, "Europe/Berlin", "2026-03-28T00:00:00+01:00",
     ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ({"times": ["02:30", "03:00"]}, "Europe/Berlin", "2026-03-29T00:00:00+01:00",
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    # every 45m from local midnight: 02:15 is in the gap and joins 03:00
    ({"every": "45m"}, "Europe/Berlin", "2026-03-29T01:00:00+01:00",
     ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:45:00+02:00"]),
    # Europe/Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET; 02:00-02:59 twice, fire the first
    ({"cron": "*/15 * * * *"}, "Europe/Berlin", "2026-10-25T01:50:00+02:00",
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-25T02:30:00+02:00",
      "2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00"]),
    ({"every": "15m"}, "Europe/Berlin", "2026-10-25T02:40:00+02:00",
     ["2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00"]),
    ({"cron": "30 2 * * *"}, "Europe/Berlin", "2026-10-24T12:00:00+02:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ({"times": ["02:30"]}, "Europe/Berlin", "2026-10-25T02:40:00+02:00",   # not again at +01:00
     ["2026-10-26T02:30:00+01:00"]),
    # America/New_York, 2026-03-08: 02:00 EST -> 03:00 EDT
    ({"cron": "*/15 * * * *"}, "America/New_York", "2026-03-08T01:40:00-05:00",
     ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"]),
    ({"cron": "30 2 * * *"}, "America/New_York", "2026-03-07T12:00:00-05:00",
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ({"times": ["02:30"]}, "America/New_York", "2026-03-07T12:00:00-05:00",
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    # America/New_York, 2026-11-01: 02:00 EDT -> 01:00 EST; 01:00-01:59 twice
    ({"cron": "*/15 * * * *"}, "America/New_York", "2026-11-01T01:40:00-04:00",
     ["2026-11-01T01:45:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:15:00-05:00"]),
    ({"every": "15m"}, "America/New_York", "2026-11-01T01:40:00-04:00",
     ["2026-11-01T01:45:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:15:00-05:00"]),
    ({"cron": "30 1 * * *"}, "America/New_York", "2026-10-31T12:00:00-04:00",
     ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    ({"cron": "30 2 * * *"}, "America/New_York", "2026-10-31T12:00:00-04:00",
     ["2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"]),
    # Australia/Lord_Howe, 2026-04-05: 02:00 (+11:00) -> 01:30 (+10:30); 01:30-01:59 twice
    ({"cron": "*/15 * * * *"}, "Australia/Lord_Howe", "2026-04-05T01:10:00+11:00",
     ["2026-04-05T01:15:00+11:00", "2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00",
      "2026-04-05T02:00:00+10:30", "2026-04-05T02:15:00+10:30"]),
    ({"every": "15m"}, "Australia/Lord_Howe", "2026-04-05T01:40:00+11:00",
     ["2026-04-05T01:45:00+11:00", "2026-04-05T02:00:00+10:30"]),
    ({"times": ["01:45"]}, "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
     ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    # Australia/Lord_Howe, 2026-10-04: 02:00 (+10:30) -> 02:30 (+11:00); 02:00-02:29 do not
    # exist, so 02:00 and 02:15 join 02:30: one fire, not three
    ({"cron": "*/15 * * * *"}, "Australia/Lord_Howe", "2026-10-04T01:40:00+10:30",
     ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"]),
    ({"every": "15m"}, "Australia/Lord_Howe", "2026-10-04T01:40:00+10:30",
     ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"]),
    ({"cron": "30 2 * * *"}, "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:30:00+11:00"]),
    ({"times": ["02:10"]}, "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:10:00+11:00"]),
]


@pytest.mark.parametrize(("raw", "zone", "after", "expected"), DST,
                         ids=[f"{d[1]}-{d[2][:10]}-{next(iter(d[0].values()))}" for d in DST])
def test_daylight_saving_fires_after_the_gap_and_once_in_the_overlap(
        raw: Any, zone: str, after: str, expected: list[str]) -> None:
    assert upcoming(raw, zone, after, len(expected)) == expected


@pytest.mark.parametrize(("zone", "day", "hours", "count"), [
    # a short day loses the quarter hours in its gap (they join the first one after it);
    # a long day fires each repeated quarter hour once: 96, as on any other day
    ("Europe/Berlin", "2026-03-29", 23, 92), ("Europe/Berlin", "2026-10-25", 25, 96),
    ("America/New_York", "2026-03-08", 23, 92), ("America/New_York", "2026-11-01", 25, 96),
    ("Australia/Lord_Howe", "2026-04-05", 24.5, 96),
    ("Australia/Lord_Howe", "2026-10-04", 23.5, 94),
])
@pytest.mark.parametrize("raw", [{"cron": "*/15 * * * *"}, {"every": "15m"}],
                         ids=["cron", "every"])
def test_a_transition_day_fires_each_quarter_hour_once(zone: str, day: str, hours: float,
                                                       count: int, raw: Any) -> None:
    tz = ZoneInfo(zone)
    start = datetime.fromisoformat(day).replace(tzinfo=tz)
    end = start + timedelta(days=1)          # wall-clock arithmetic: the next local midnight
    assert (end.astimezone(UTC) - start.astimezone(UTC)) == timedelta(hours=hours)
    fires = fires_between(bound(raw, zone), start - timedelta(seconds=1),
                          end - timedelta(seconds=1))
    instants = [f.at for f in fires]
    assert len(fires) == count
    assert len(set(instants)) == count
    assert all(f.day == start.date() for f in fires)
    walls = [f.at.strftime("%H:%M") for f in fires]
    assert len(set(walls)) == count          # no wall time twice: the first one only
    assert all(f.at.fold == 0 for f in fires)


# ------------------------------------------------------------------ times past 24:00


@pytest.fixture
def weekdays_calendar(tmp_path: Path) -> Calendar:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "weekdays.toml").write_text(
        'name = "weekdays"\nweekdays = ["mon", "tue", "wed", "thu", "fri"]\n'
        'exclude = ["2027-01-01"]\n', encoding="utf-8")
    return CalendarLibrary().get("weekdays", tmp_path / "net.toml")


LATE = [
    # year end: Thu 2026-12-31 fires at 01:30 on New Year's day; Fri 2027-01-01 is closed,
    # so nothing at 01:30 on the 2nd; Sat and Sun are closed; Mon 2027-01-04 fires on the 5th
    ("2026-12-30T12:00:00+09:00",
     [("2026-12-31T01:30:00+09:00", date(2026, 12, 30)),
      ("2027-01-01T01:30:00+09:00", date(2026, 12, 31)),
      ("2027-01-05T01:30:00+09:00", date(2027, 1, 4))]),
    # month end: Tue 2026-03-31 fires on April 1st
    ("2026-03-30T12:00:00+09:00",
     [("2026-03-31T01:30:00+09:00", date(2026, 3, 30)),
      ("2026-04-01T01:30:00+09:00", date(2026, 3, 31)),
      ("2026-04-02T01:30:00+09:00", date(2026, 4, 1))]),
    # Friday's fire falls on Saturday; Sunday's and Monday's early hours have none
    ("2026-01-29T12:00:00+09:00",
     [("2026-01-30T01:30:00+09:00", date(2026, 1, 29)),
      ("2026-01-31T01:30:00+09:00", date(2026, 1, 30)),
      ("2026-02-03T01:30:00+09:00", date(2026, 2, 2))]),
    # asked just after midnight: the fire still ahead belongs to the day before
    ("2027-01-01T00:00:00+09:00", [("2027-01-01T01:30:00+09:00", date(2026, 12, 31))]),
]


@pytest.mark.parametrize(("after", "expected"), LATE, ids=[a for a, _ in LATE])
def test_times_past_midnight_belong_to_the_operating_day_before(
        weekdays_calendar: Calendar, after: str, expected: list[tuple[str, date]]) -> None:
    b = bound({"times": ["25:30"], "calendar": "weekdays", "timezone": "Asia/Tokyo"},
              calendar=lambda name: weekdays_calendar)
    fires = next_fires(b, at(after), len(expected))
    assert [(f.at.isoformat(), f.day) for f in fires] == expected


def test_times_before_and_after_midnight_interleave(weekdays_calendar: Calendar) -> None:
    b = bound({"times": ["25:30", "23:00"], "calendar": "weekdays", "timezone": "Asia/Tokyo"},
              calendar=lambda name: weekdays_calendar)
    fires = next_fires(b, at("2026-12-31T00:00:00+09:00"), 5)
    assert [(f.at.isoformat(), f.day.isoformat()) for f in fires] == [
        ("2026-12-31T01:30:00+09:00", "2026-12-30"),
        ("2026-12-31T23:00:00+09:00", "2026-12-31"),
        ("2027-01-01T01:30:00+09:00", "2026-12-31"),
        ("2027-01-04T23:00:00+09:00", "2027-01-04"),
        ("2027-01-05T01:30:00+09:00", "2027-01-04"),
    ]


def test_cron_with_a_calendar_fires_only_on_operating_days(weekdays_calendar: Calendar) -> None:
    b = bound({"cron": "0 9 * * *", "calendar": "weekdays"},
              calendar=lambda name: weekdays_calendar)
    assert iso(next_fires(b, at("2026-12-31T12:00:00+00:00"), 2)) == [
        "2027-01-04T09:00:00+00:00", "2027-01-05T09:00:00+00:00"]


# ------------------------------------------------------------------ windows

WINDOWS = [
    # the start is inside, the end is not
    ({"every": "1h", "window": "08:00-18:00"}, "2026-06-01T00:00:00+00:00", 11,
     [f"2026-06-01T{h:02d}:00:00+00:00" for h in range(8, 18)] + ["2026-06-02T08:00:00+00:00"]),
    ({"times": ["07:59", "08:00", "17:59", "18:00"], "window": "08:00-18:00"},
     "2026-06-01T00:00:00+00:00", 3,
     ["2026-06-01T08:00:00+00:00", "2026-06-01T17:59:00+00:00", "2026-06-02T08:00:00+00:00"]),
    # across midnight
    ({"every": "1h", "window": "22:00-02:00"}, "2026-06-01T12:00:00+00:00", 5,
     ["2026-06-01T22:00:00+00:00", "2026-06-01T23:00:00+00:00", "2026-06-02T00:00:00+00:00",
      "2026-06-02T01:00:00+00:00", "2026-06-02T22:00:00+00:00"]),
    ({"cron": "30 * * * *", "window": "23:00-01:00"}, "2026-12-31T12:00:00+00:00", 3,
     ["2026-12-31T23:30:00+00:00", "2027-01-01T00:30:00+00:00", "2027-01-01T23:30:00+00:00"]),
    # a list of windows
    ({"every": "30m", "window": ["06:00-07:00", "12:00-12:30"]}, "2026-06-01T00:00:00+00:00", 4,
     ["2026-06-01T06:00:00+00:00", "2026-06-01T06:30:00+00:00", "2026-06-01T12:00:00+00:00",
      "2026-06-02T06:00:00+00:00"]),
    # a window in local time, on a daylight-saving day: 03:00 CEST is inside 03:00-04:00
    ({"every": "30m", "window": "03:00-04:00", "timezone": "Europe/Berlin"},
     "2026-03-29T00:00:00+01:00", 3,
     ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T03:00:00+02:00"]),
]


@pytest.mark.parametrize(("raw", "after", "n", "expected"), WINDOWS,
                         ids=[str(w[0]["window"]) for w in WINDOWS])
def test_windows_let_only_their_fires_through(raw: dict[str, Any], after: str, n: int,
                                              expected: list[str]) -> None:
    assert upcoming(raw, "UTC", after, n) == expected


# ------------------------------------------------------------------ merging, ranges


def test_several_schedules_merge_in_time_order_without_duplicates() -> None:
    b = bound([{"cron": "0 9 * * *"}, {"times": ["09:00", "12:00"]}, {"every": "6h"}])
    fires = next_fires(b, at("2026-06-01T00:00:00+00:00"), 7)
    assert [(f.at.isoformat(), f.schedule) for f in fires] == [
        ("2026-06-01T06:00:00+00:00", 2),
        ("2026-06-01T09:00:00+00:00", 0),
        ("2026-06-01T12:00:00+00:00", 1),
        ("2026-06-01T18:00:00+00:00", 2),
        ("2026-06-02T00:00:00+00:00", 2),
        ("2026-06-02T06:00:00+00:00", 2),
        ("2026-06-02T09:00:00+00:00", 0),
    ]


def test_schedules_in_different_zones_merge_by_instant() -> None:
    b = bound([{"cron": "0 9 * * *", "timezone": "Asia/Tokyo"},
               {"cron": "0 1 * * *", "timezone": "Europe/Berlin"}])
    fires = next_fires(b, at("2026-06-01T00:00:00+00:00"), 3)
    assert iso(fires) == ["2026-06-02T01:00:00+02:00", "2026-06-02T09:00:00+09:00",
                          "2026-06-03T01:00:00+02:00"]
    assert [f.at.astimezone(UTC).isoformat() for f in fires] == [
        "2026-06-01T23:00:00+00:00", "2026-06-02T00:00:00+00:00", "2026-06-02T23:00:00+00:00"]
    assert [f.schedule for f in fires] == [1, 0, 1]


@pytest.mark.parametrize(("start", "end", "expected"), [
    # start excluded, end included
    ("2026-06-01T06:00:00+00:00", "2026-06-01T18:00:00+00:00",
     ["2026-06-01T09:00:00+00:00", "2026-06-01T12:00:00+00:00", "2026-06-01T18:00:00+00:00"]),
    ("2026-06-01T05:59:59+00:00", "2026-06-01T08:59:59+00:00", ["2026-06-01T06:00:00+00:00"]),
    ("2026-06-01T09:00:00+00:00", "2026-06-01T09:00:00+00:00", []),
    ("2026-06-01T10:00:00+00:00", "2026-06-01T11:00:00+00:00", []),
])
def test_fires_between_is_start_exclusive_end_inclusive(start: str, end: str,
                                                         expected: list[str]) -> None:
    b = bound([{"cron": "0 9 * * *"}, {"times": ["09:00", "12:00"]}, {"every": "6h"}])
    assert iso(fires_between(b, at(start), at(end))) == expected


@pytest.mark.parametrize(("raw", "zone"), [
    ([{"cron": "*/7 * * * *"}, {"times": ["02:30", "25:30"]}], "Europe/Berlin"),
    ({"every": "15m", "window": ["22:00-02:00"]}, "America/New_York"),
    ({"cron": "0 0 L * *"}, "Australia/Lord_Howe"),
])
def test_fires_between_is_a_prefix_of_next_fires(raw: Any, zone: str) -> None:
    b = bound(raw, zone)
    start = at("2026-03-01T00:00:00+00:00")
    end = at("2026-11-15T00:00:00+00:00")   # across both of this year's transitions
    between = fires_between(b, start, end)
    assert between, "nothing in range"
    assert all(start < f.at <= end for f in between)
    assert next_fires(b, start, len(between) + 1)[:len(between)] == between
    assert next_fires(b, start, len(between) + 1)[-1].at > end


# ------------------------------------------------------------------ deadlines


DEADLINES = [
    # clock times on the fire's own day
    ({"times": ["02:30"], "deadline": {"start_by": "02:45", "finish_by": "05:00"}},
     "2026-06-01T00:00:00+00:00", "2026-06-01T02:45:00+00:00", "2026-06-01T05:00:00+00:00"),
    # a finish earlier than the fire means the next day
    ({"times": ["23:00"], "deadline": {"start_by": "23:15", "finish_by": "01:00"}},
     "2026-12-31T00:00:00+00:00", "2026-12-31T23:15:00+00:00", "2027-01-01T01:00:00+00:00"),
    # a fire past 24:00: its clock times count from its operating day
    ({"times": ["25:30"], "deadline": {"start_by": "25:45", "finish_by": "04:00"}},
     "2026-06-01T00:00:00+00:00", "2026-06-01T01:45:00+00:00", "2026-06-01T04:00:00+00:00"),
    # durations after the fire
    ({"cron": "30 23 * * *", "deadline": {"start_by": "15m", "finish_by": "2h"}},
     "2026-12-31T00:00:00+00:00", "2026-12-31T23:45:00+00:00", "2027-01-01T01:30:00+00:00"),
    ({"cron": "0 12 * * *", "deadline": {"finish_by": 90}},
     "2026-06-01T00:00:00+00:00", None, "2026-06-01T12:01:30+00:00"),
    # a deadline in the spring-forward gap: the first instant after it
    ({"times": ["01:30"], "timezone": "Europe/Berlin", "deadline": {"finish_by": "02:30"}},
     "2026-03-29T00:00:00+01:00", None, "2026-03-29T03:00:00+02:00"),
]


@pytest.mark.parametrize(("raw", "after", "start_by", "finish_by"), DEADLINES,
                         ids=[str(d[0]["deadline"]) for d in DEADLINES])
def test_deadlines(raw: dict[str, Any], after: str, start_by: str | None,
                   finish_by: str | None) -> None:
    [b] = bound(raw)
    [fire] = next_fires([b], at(after), 1)
    got = deadlines(b, fire)
    assert [t.isoformat() if t else None for t in got] == [start_by, finish_by]
    assert all(t is None or t > fire.at for t in got)


def test_no_deadline_gives_none() -> None:
    [b] = bound({"cron": "@daily"})
    [fire] = next_fires([b], at("2026-06-01T00:00:00+00:00"), 1)
    assert deadlines(b, fire) == (None, None)


# ------------------------------------------------------------------ never


@pytest.mark.parametrize("raw", [
    {"cron": "0 12 * * *", "window": "01:00-02:00"},
    {"cron": "0 18 * * *", "window": "08:00-18:00"},
    {"times": ["25:30"], "window": "02:00-03:00"},
    {"every": "1h", "window": "08:30-09:00"},
])
def test_a_schedule_that_can_never_fire_gives_nothing_soon(raw: dict[str, Any]) -> None:
    b = bound(raw)
    began = time.perf_counter()
    assert next_fires(b, at("2026-01-01T00:00:00+00:00"), 3) == []
    assert fires_between(b, at("2026-01-01T00:00:00+00:00"), at("2027-01-01T00:00:00+00:00")) \
        == []
    assert time.perf_counter() - began < 10


def test_a_calendar_without_operating_days_gives_nothing_soon(tmp_path: Path) -> None:
    (tmp_path / "closed.toml").write_text('weekdays = []\n', encoding="utf-8")
    closed = CalendarLibrary().get("closed", tmp_path / "net.toml")
    b = bound({"cron": "@hourly", "calendar": "closed"}, calendar=lambda name: closed)
    began = time.perf_counter()
    assert next_fires(b, at("2026-01-01T00:00:00+00:00"), 1) == []
    assert time.perf_counter() - began < 10


# ------------------------------------------------------------------ the command line


def jaz(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env["JAZ_HOME"] = str(cwd / "home")
    env["COLUMNS"] = "200"
    env["TZ"] = "UTC"
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


NET = """\
[schedule]
times = ["23:00", "25:30"]
calendar = "weekdays"
timezone = "Asia/Tokyo"

[jobs.a]
run = "true"
"""


@pytest.fixture
def net(tmp_path: Path, weekdays_calendar: Calendar) -> Path:
    path = tmp_path / "late.toml"
    path.write_text(NET, encoding="utf-8")
    return path


def test_jaz_next_json_lists_iso_times(net: Path) -> None:
    result = jaz("next", net, "-n", "4", "--after", "2026-12-31T00:00+09:00", "--json",
                 cwd=net.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "2026-12-31T01:30:00+09:00", "2026-12-31T23:00:00+09:00",
        "2027-01-01T01:30:00+09:00", "2027-01-04T23:00:00+09:00"]


def test_jaz_next_shows_the_operating_day(net: Path) -> None:
    result = jaz("next", net, "-n", "2", "--after", "2026-12-31T00:00+09:00", cwd=net.parent)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("2026-12-31 ")]
    assert len(lines) == 2
    assert "2026-12-30 (day before)" in lines[0]
    assert lines[1].rstrip().endswith("2026-12-31")


def test_jaz_next_after_a_time_without_offset_is_local(net: Path) -> None:
    result = jaz("next", net, "-n", "1", "--after", "2026-12-30T17:00", "--json",
                 cwd=net.parent)   # TZ=UTC: 2026-12-31T02:00+09:00
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["2026-12-31T23:00:00+09:00"]


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--after", "next tuesday"], 2, 'bad --after "next tuesday"'),
    (["--after", "2026-13-01"], 2, "use ISO 8601"),
    (["-n", "0"], 2, "-n"),
])
def test_jaz_next_bad_usage_exits_2(net: Path, args: list[str], code: int, words: str) -> None:
    result = jaz("next", net, *args, cwd=net.parent)
    assert result.returncode == code
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_jaz_next_unknown_calendar_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    path.write_text(NET.replace('"weekdays"', '"nope"'), encoding="utf-8")
    result = jaz("next", path, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3 (field 'schedule.calendar'): unknown calendar \"nope\"" in result.stderr
    assert '"nope" not found' in result.stderr


def test_jaz_next_missing_file_exits_4(tmp_path: Path) -> None:
    result = jaz("next", tmp_path / "missing.toml", cwd=tmp_path)
    assert result.returncode == 4
    assert "missing.toml" in result.stderr


def test_jaz_next_without_schedule_says_so(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('[jobs.a]\nrun = "true"\n', encoding="utf-8")
    result = jaz("next", path, "--json", cwd=tmp_path)
    assert (result.returncode, json.loads(result.stdout)) == (0, [])


@pytest.mark.parametrize(("schedule", "field", "line_no", "words"), [
    ('cron = "0 0 31 2 *"', "schedule.cron", 2, "never occurs in month 2"),
    ('times = ["02:30", "24:75"]', "schedule.times[1]", 2, "minutes and seconds go up to 59"),
    ('every = "15m"\nwindow = "18:00"', "schedule.window", 3, 'like "08:00-18:00"'),
    ('cron = "@daily"\ncalendar = "nope"', "schedule.calendar", 3, "unknown calendar"),
])
def test_jaz_validate_reports_schedule_problems(tmp_path: Path, schedule: str, field: str,
                                                line_no: int, words: str) -> None:
    path = tmp_path / "net.toml"
    path.write_text(f'[schedule]\n{schedule}\n\n[jobs.a]\nrun = "true"\n', encoding="utf-8")
    result = jaz("validate", path, cwd=tmp_path)
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if f"(field '{field}')" in x]
    assert line.startswith(f"{path}:{line_no} (field '{field}'): ")
    assert words in line


def test_jaz_validate_reports_every_problem_of_a_schedule_list(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    path.write_text('[[schedule]]\ncron = "0 0 * *"\n\n[[schedule]]\nevery = "15m"\n'
                    'window = ["08:00-18:00", "9-10"]\novertap = "skip"\n\n'
                    '[jobs.a]\nrun = "true"\n', encoding="utf-8")
    result = jaz("validate", path, cwd=tmp_path)
    assert result.returncode == 2
    fields = {line.split("(field '")[1].split("'")[0]
              for line in result.stderr.splitlines() if "(field '" in line}
    assert fields == {"schedule[0].cron", "schedule[1].window[1]", "schedule[1].overtap"}
