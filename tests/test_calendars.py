"""Business calendars (SPEC §1.4): base calendars over whole years, filters with shifts
across month and year ends, Nth operating days, validation, and `jaz calendar show`.

Expected days come from independent oracles (a plain weekday loop, the `holidays`
package asked directly) or from dates checked by hand against a printed calendar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import holidays
import pytest

from jaz.engine.calendars import Calendar, CalendarLibrary, load_calendar_text, operating_days
from jaz.errors import JobnetInvalid, NotFound


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def library(tmp_path: Path, **files: str) -> CalendarLibrary:
    for name, text in files.items():
        write(tmp_path, name, text)
    return CalendarLibrary((tmp_path,))


def days_of(cal: Calendar, year: int) -> list[date]:
    return operating_days(cal, date(year, 1, 1), date(year, 12, 31))


def every_day(year: int) -> list[date]:
    d, out = date(year, 1, 1), []
    while d.year == year:
        out.append(d)
        d += timedelta(days=1)
    return out


MON_FRI = 'weekdays = ["mon", "tue", "wed", "thu", "fri"]\n'


# ------------------------------------------------------------------ base calendars


@pytest.mark.parametrize("code,year", [
    ("JP", 2026), ("JP", 2024), ("JP", 2027), ("DE-BY", 2026), ("DE-BE", 2028),
    ("US-NY", 2026), ("GB", 2025),
])
def test_a_base_calendar_is_its_weekdays_minus_public_holidays_for_whole_years(
        tmp_path: Path, code: str, year: int) -> None:
    cal = library(tmp_path, cal=MON_FRI + f'holidays = "{code}"\n').get("cal")
    country, _, subdiv = code.partition("-")
    public = holidays.country_holidays(country, subdiv=subdiv or None, years=year)
    expected = [d for d in every_day(year) if d.weekday() < 5 and d not in public]
    assert days_of(cal, year) == expected
    assert len(expected) in range(240, 256)   # the oracle itself is a plausible year


@pytest.mark.parametrize("day,operating", [
    (date(2026, 1, 1), False),    # 元日
    (date(2026, 1, 2), True),     # a bank holiday, not a public one
    (date(2026, 1, 12), False),   # 成人の日, second Monday of January
    (date(2026, 5, 6), False),    # 振替休日: Constitution Day fell on a Sunday
    (date(2026, 9, 22), False),   # 国民の休日, between two holidays
    (date(2026, 11, 23), False),  # 勤労感謝の日
    (date(2026, 11, 24), True),
    (date(2026, 11, 21), False),  # a Saturday
])
def test_japanese_holidays_by_hand(tmp_path: Path, day: date, operating: bool) -> None:
    cal = library(tmp_path, jp=MON_FRI + 'holidays = "JP"\n').get("jp")
    assert cal.is_operating(day) is operating


def test_subdivisions_differ_epiphany_is_a_holiday_in_bavaria_not_in_berlin(
        tmp_path: Path) -> None:
    lib = library(tmp_path, by=MON_FRI + 'holidays = "DE-BY"\n',
                  be=MON_FRI + 'holidays = "de-be"\n')
    assert not lib.get("by").is_operating(date(2026, 1, 6))
    assert lib.get("be").is_operating(date(2026, 1, 6))
    assert lib.get("be").holidays == ("DE-BE",)


@pytest.mark.parametrize("written,shown", [
    ("DE-Augsburg", "DE-Augsburg"), ("de-augsburg", "DE-Augsburg"), ("de-by", "DE-BY"),
    ("DE-Bayern", "DE-Bayern"), ("CH-Stadt Zurich", "CH-Stadt Zurich"),
])
def test_subdivisions_are_named_as_the_holidays_package_names_them(
        tmp_path: Path, written: str, shown: str) -> None:
    cal = library(tmp_path, c=MON_FRI + f'holidays = "{written}"\n').get("c")
    assert cal.holidays == (shown,)
    country, _, subdiv = shown.partition("-")
    public = holidays.country_holidays(country, subdiv=subdiv, years=2026)
    assert [d for d in every_day(2026) if not cal.is_operating(d) and d.weekday() < 5] \
        == sorted(d for d in public if d.weekday() < 5)


def test_several_countries_close_on_the_union_of_their_holidays(tmp_path: Path) -> None:
    cal = library(tmp_path, c=MON_FRI + 'holidays = ["JP", "US"]\n').get("c")
    assert not cal.is_operating(date(2026, 7, 3))   # US: Independence Day observed
    assert not cal.is_operating(date(2026, 7, 20))  # JP: Marine Day
    assert cal.holiday_names(2026)[date(2026, 7, 20)] == "Marine Day"


def test_include_and_exclude_ranges_across_the_year_end(tmp_path: Path) -> None:
    cal = library(tmp_path, c=MON_FRI + 'holidays = "JP"\n'
                  'exclude = ["2026-12-30..2027-01-03", "2027-01-08"]\n'
                  'include = ["2026-12-26", "2027-01-02"]\n').get("c")
    assert [d.isoformat() for d in operating_days(cal, date(2026, 12, 24), date(2027, 1, 11))] \
        == ["2026-12-24", "2026-12-25", "2026-12-26", "2026-12-28", "2026-12-29",
            "2027-01-02", "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07"]
    # 12-26 is a Saturday (included), 01-02 is inside the excluded range (include wins),
    # 01-08 excluded, 01-11 is Coming of Age Day


@pytest.mark.parametrize("year", [2024, 2025, 2100, 2000])
def test_weekdays_over_leap_and_common_years(tmp_path: Path, year: int) -> None:
    cal = library(tmp_path, c='weekdays = ["sat", "Sunday"]\n').get("c")
    assert days_of(cal, year) == [d for d in every_day(year) if d.weekday() >= 5]


def test_an_explicit_date_list_calendar(tmp_path: Path) -> None:
    cal = library(tmp_path, c='weekdays = []\ninclude = ["2026-03-03", 2026-06-06, '
                              '"2026-12-30..2027-01-02"]\n').get("c")
    assert [d.isoformat() for d in operating_days(cal, date(2026, 1, 1), date(2027, 12, 31))] \
        == ["2026-03-03", "2026-06-06", "2026-12-30", "2026-12-31", "2027-01-01",
            "2027-01-02"]


def test_default_weekdays_are_monday_to_friday(tmp_path: Path) -> None:
    cal = library(tmp_path, c='name = "c"\n').get("c")
    assert days_of(cal, 2026) == [d for d in every_day(2026) if d.weekday() < 5]


# ------------------------------------------------------------------ filters

# base for the filter tables: Mon-Fri, closed 2026-12-30..2027-01-03 and on 2026-08-31
BASE = MON_FRI + 'exclude = ["2026-12-30..2027-01-03", "2026-08-31"]\n'


@pytest.mark.parametrize("rule,year,expected", [
    # last day of the month, moved back when closed (Jan 31 2026 is a Saturday)
    ('day_of_month = [-1]\nshift = "previous"', 2026,
     ["01-30", "02-27", "03-31", "04-30", "05-29", "06-30", "07-31", "08-28", "09-30",
      "10-30", "11-30", "12-29"]),
    # moved forward: Jan 31 (Sat) → Feb 2, Feb 28 (Sat) → Mar 2; Dec 31 → 2027-01-04
    ('day_of_month = [-1]\nshift = "next"', 2026,
     ["02-02", "03-02", "03-31", "04-30", "06-01", "06-30", "07-31", "09-01", "09-30",
      "11-02", "11-30"]),
    ('day_of_month = [-1]\nshift = "next"', 2027,
     ["01-04", "02-01", "03-01", "03-31", "04-30", "05-31", "06-30", "08-02", "08-31",
      "09-30", "11-01", "11-30", "12-31"]),
    # closed days dropped
    ('day_of_month = [-1]\nshift = "none"', 2026,
     ["03-31", "04-30", "06-30", "07-31", "09-30", "11-30"]),
    # the 31st only exists in long months; the 30th is missing in February
    ('day_of_month = [31]', 2026, ["03-31", "07-31"]),
    # 2028 is a leap year starting on a Saturday: Feb 29 exists, Feb 30 does not
    ('day_of_month = [29, 30]\nshift = "previous"', 2028,
     ["01-28", "02-29", "03-29", "03-30", "04-28", "05-29", "05-30", "06-29", "06-30",
      "07-28", "08-29", "08-30", "09-29", "10-27", "10-30", "11-29", "11-30", "12-29"]),
    # first, last and second-to-last operating days
    ('operating_day_of_month = [1]', 2027,
     ["01-04", "02-01", "03-01", "04-01", "05-03", "06-01", "07-01", "08-02", "09-01",
      "10-01", "11-01", "12-01"]),
    ('operating_day_of_month = [-2]', 2026,
     ["01-29", "02-26", "03-30", "04-29", "05-28", "06-29", "07-30", "08-27", "09-29",
      "10-29", "11-27", "12-28"]),
])
def test_filter_rules_over_a_whole_year(tmp_path: Path, rule: str, year: int,
                                        expected: list[str]) -> None:
    lib = library(tmp_path, base=BASE, f=f'base = "base"\n{rule}\n')
    assert [d.strftime("%m-%d") for d in days_of(lib.get("f"), year)] == expected


def test_a_shift_that_crosses_the_year_end_lands_in_the_next_year(tmp_path: Path) -> None:
    lib = library(tmp_path, base=BASE, f='base = "base"\nday_of_month = [-1]\nshift = "next"\n')
    f = lib.get("f")
    assert date(2027, 1, 4) in f.year(2027) and date(2027, 1, 4) not in f.year(2026)
    assert not f.is_operating(date(2026, 12, 31))


def test_nth_operating_day_in_months_with_few_operating_days(tmp_path: Path) -> None:
    lib = library(tmp_path,
                  sparse='weekdays = []\ninclude = ["2026-02-10", "2026-02-20", "2026-03-05"]\n',
                  third='base = "sparse"\noperating_day_of_month = [3]\n',
                  ends='base = "sparse"\noperating_day_of_month = [1, -1, -2]\n')
    assert days_of(lib.get("third"), 2026) == []
    assert [d.isoformat() for d in days_of(lib.get("ends"), 2026)] == \
        ["2026-02-10", "2026-02-20", "2026-03-05"]


def test_a_filter_of_a_filter(tmp_path: Path) -> None:
    lib = library(tmp_path, base=BASE,
                  gotobi='base = "base"\nday_of_month = [5, 10, 15, 20, 25, -1]\n'
                         'shift = "previous"\n',
                  q='base = "gotobi"\noperating_day_of_month = [-1]\n')
    gotobi = days_of(lib.get("gotobi"), 2026)
    # January 2026: the 10th is a Saturday, the 25th a Sunday, the 31st a Saturday
    assert [d.day for d in gotobi if d.month == 1] == [5, 9, 15, 20, 23, 30]
    by_month: dict[int, list[date]] = {}
    for d in gotobi:
        by_month.setdefault(d.month, []).append(d)
    assert days_of(lib.get("q"), 2026) == [max(v) for _, v in sorted(by_month.items())]


def test_filter_include_and_exclude_apply_after_the_rule(tmp_path: Path) -> None:
    lib = library(tmp_path, base=BASE,
                  f='base = "base"\noperating_day_of_month = [1]\n'
                    'exclude = ["2026-06-01"]\ninclude = ["2026-06-02"]\n')
    june = [d for d in days_of(lib.get("f"), 2026) if d.month == 6]
    assert june == [date(2026, 6, 2)]


def test_operating_days_are_in_order_across_years(tmp_path: Path) -> None:
    cal = library(tmp_path, c=BASE).get("c")
    days = operating_days(cal, date(2026, 12, 20), date(2027, 1, 10))
    assert days == sorted(days) and days[0] == date(2026, 12, 21) and \
        days[-1] == date(2027, 1, 8)
    assert list(cal.days_from(date(2026, 12, 29)))[:2] == [date(2026, 12, 29),
                                                           date(2027, 1, 4)]


def test_names_are_found_next_to_the_file_and_in_its_calendars_folder(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    write(tmp_path / "calendars", "base", BASE)
    write(tmp_path / "calendars", "other-file-name", 'name = "renamed"\n' + MON_FRI)
    jobnet = tmp_path / "job.toml"
    lib = CalendarLibrary()
    assert lib.get("base", jobnet).name == "base"
    assert lib.get("renamed", jobnet).name == "renamed"
    assert lib.get("calendars/base.toml", jobnet) is lib.get("base", jobnet)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("text,field,message", [
    ('weekdays = ["mon", "funday"]', "weekdays[1]", 'unknown weekday "funday"'),
    ('weekdays = "mon"', "weekdays", "expected a list of weekday names"),
    ('weekdays = [1]', "weekdays[0]", "unknown weekday 1"),
    ('holidays = "XX"', "holidays",
     'unknown holidays code "XX": the holidays package has no country "XX"'),
    ('holidays = "US-ZZ"', "holidays",
     'unknown holidays code "US-ZZ": US has no subdivision "ZZ" (nearest: "US-AZ")'),
    ('holidays = "J P"', "holidays", "bad holidays code"),
    ('holidays = 81', "holidays", "expected a country code"),
    ('include = ["2026-02-30"]', "include[0]", 'bad date "2026-02-30"'),
    ('include = ["20261201"]', "include[0]", 'bad date "20261201"'),
    ('exclude = ["2026-12-31..2026-12-01"]', "exclude[0]", "ends before it starts"),
    ('exclude = ["2026-12-01...2026-12-31"]', "exclude[0]", "bad date"),
    ('exclude = "2026-12-01"', "exclude", "expected a list of dates"),
    ('include = [5]', "include[0]", "expected a date string"),
    ('include = ["2026-05-01"]\nexclude = ["2026-05-01"]', "include",
     "both included and excluded"),
    ('colour = "red"', "colour", 'unknown key "colour"'),
    ('weekday = ["mon"]', "weekday", 'did you mean "weekdays"?'),
    ('day_of_month = [1]', "day_of_month", "is for a filter calendar"),
    ('name = "bad name!"', "name", "bad calendar name"),
    ('base = "b"\nweekdays = ["mon"]\nday_of_month = [1]', "weekdays",
     "belongs in a base calendar"),
    ('base = "b"', "base", "needs 'day_of_month' or 'operating_day_of_month'"),
    ('base = "b"\nday_of_month = [0]', "day_of_month[0]", "expected a day number"),
    ('base = "b"\nday_of_month = [32]', "day_of_month[0]", "expected a day number"),
    ('base = "b"\nday_of_month = []', "day_of_month", "expected a list of day numbers"),
    ('base = "b"\nday_of_month = [1]\nshift = "later"', "shift", "expected one of"),
    ('base = "b"\noperating_day_of_month = [1]\nshift = "next"', "shift",
     "only applies to 'day_of_month'"),
    ('base = "b"\noperating_day_of_month = [-32]', "operating_day_of_month[0]",
     "expected a day number"),
    ('base = "nowhere"\nday_of_month = [1]', "base", "unknown base calendar"),
])
def test_malformed_calendars_name_the_field(tmp_path: Path, text: str, field: str,
                                            message: str) -> None:
    lib = library(tmp_path, b=MON_FRI)
    path = write(tmp_path, "bad", text + "\n")
    with pytest.raises(JobnetInvalid) as e:
        load_calendar_text(path.read_text(), path=path, resolve=lib.get)
    found = [(p.field, p.message) for p in e.value.problems]
    assert any(f == field and message in m for f, m in found), found
    assert all(p.file == str(path) for p in e.value.problems)


def test_every_problem_of_a_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "bad", 'weekdays = ["mon", "x"]\nholidays = "XX"\n'
                                  'include = ["nope"]\nextra = 1\n')
    with pytest.raises(JobnetInvalid) as e:
        load_calendar_text(path.read_text(), path=path)
    assert sorted(p.field or "" for p in e.value.problems) == \
        ["extra", "holidays", "include[0]", "weekdays[1]"]


def test_a_base_cycle_names_the_calendars(tmp_path: Path) -> None:
    lib = library(tmp_path, a='base = "b"\nday_of_month = [1]\n',
                  b='base = "c"\nday_of_month = [1]\n', c='base = "a"\nday_of_month = [1]\n')
    with pytest.raises(JobnetInvalid) as e:
        lib.get("a")
    assert "cycle: a -> b -> c -> a" in str(e.value) or "cycle" in str(e.value)
    assert any(p.field == "base" for p in e.value.problems)


def test_a_broken_base_reports_the_base_file(tmp_path: Path) -> None:
    lib = library(tmp_path, b='weekdays = ["someday"]\n', f='base = "b"\nday_of_month = [1]\n')
    with pytest.raises(JobnetInvalid) as e:
        lib.get("f")
    assert any(p.file.endswith("b.toml") and p.field == "weekdays[0]" for p in e.value.problems)


def test_toml_syntax_errors_have_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad", 'weekdays = ["mon"]\nholidays = = "JP"\n')
    with pytest.raises(JobnetInvalid) as e:
        load_calendar_text(path.read_text(), path=path)
    assert (e.value.problems[0].line, e.value.problems[0].column) == (2, 12)


# ------------------------------------------------------------------ the command line


def jaz(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAZ_")}
    env.update(JAZ_HOME=str(cwd / ".jaz"), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "jaz", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_calendar_show_json_is_the_operating_dates(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    write(tmp_path / "calendars", "jp", MON_FRI + 'holidays = "JP"\n')
    result = jaz("calendar", "show", "jp", "--year", "2026", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dates = json.loads(result.stdout)
    cal = CalendarLibrary().get("jp", tmp_path / "x.toml")
    assert dates == [d.isoformat() for d in days_of(cal, 2026)]


def test_calendar_show_draws_months_and_names_holidays(tmp_path: Path) -> None:
    path = write(tmp_path, "jp", MON_FRI + 'holidays = "JP"\n')
    result = jaz("calendar", "show", path, "-y", "2026", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "jp 2026: 244 operating days" in out   # 261 weekdays, 17 holidays on them
    assert "January 2026" in out and "December 2026" in out
    assert " Mo  Tu  We  Th  Fr  Sa  Su" in out
    assert "  1h  2*  3   4" in out          # Jan 1 holiday, Jan 2 operating, weekend
    assert "2026-11-23 Mon  Labor Thanksgiving Day  (closed)" in out
    assert "\x1b[" not in out                 # no colour codes when piped


@pytest.mark.parametrize("args,code,message", [
    (["calendar", "show", "nowhere"], 4, 'calendar "nowhere" not found'),
    (["calendar", "show", "missing.toml"], 4, "no such calendar file"),
    (["calendar", "show", "bad.toml"], 2, 'unknown weekday "x"'),
    (["calendar", "show", "bad.toml", "--year", "20260"], 2, "20260"),
    (["calendar", "show", "bad.toml", "--year", "soon"], 2, "soon"),
    (["calendar"], 2, "show"),
])
def test_calendar_show_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    write(tmp_path, "bad", 'weekdays = ["x"]\n')
    result = jaz(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_validate_checks_calendar_files_and_a_jobnets_calendars(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    write(tmp_path / "calendars", "good", MON_FRI)
    write(tmp_path / "calendars", "broken", 'base = "good"\nday_of_month = [99]\n')
    write(tmp_path, "uses-good", '[schedule]\ntimes = ["02:30"]\ncalendar = "good"\n'
                                 '[jobs.a]\nrun = "true"\n')
    write(tmp_path, "uses-missing", '[schedule]\ntimes = ["02:30"]\ncalendar = "nope"\n'
                                    '[jobs.a]\nrun = "true"\n')
    ok = jaz("validate", "calendars/good.toml", "uses-good.toml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "calendars/good.toml (calendar, " in ok.stdout
    bad = jaz("validate", "calendars/broken.toml", "uses-missing.toml", "--json", cwd=tmp_path)
    assert bad.returncode == 2
    results = {r["file"]: r for r in json.loads(bad.stdout)}
    broken = results["calendars/broken.toml"]
    assert broken["kind"] == "calendar" and not broken["valid"]
    assert broken["problems"][0]["field"] == "day_of_month[0]"
    missing = results["uses-missing.toml"]
    assert missing["problems"][0]["field"] == "schedule.calendar"
    assert "unknown calendar" in missing["problems"][0]["message"]


def test_operating_day_in_a_jobnet_run_by_jaz_run(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    write(tmp_path / "calendars", "weekdays", MON_FRI + 'exclude = ["2026-11-20"]\n')
    net = write(tmp_path, "net", """\
[jobs.check]
set = { FRI = "${operating_day('weekdays', '2026-11-20')}", \
THU = "${operating_day('weekdays', date('2026-11-19'))}", \
DAY = "${weekday('2026-11-19')}" }

[jobs.on_operating_day]
needs = ["check"]
if = "check.THU == 'true' and check.FRI == 'false'"
run = "echo ran"

[jobs.on_a_closed_day]
needs = ["check"]
if = "operating_day('weekdays', '2026-11-20')"
run = "echo should not run"

[jobs.broken]
needs = ["on_operating_day"]
if = "operating_day('nowhere', today())"
run = "true"
""")
    result = jaz("run", net, "--json", "--db", tmp_path / "j.db", cwd=tmp_path)
    run = json.loads(result.stdout)
    jobs = run["jobs"]
    assert jobs["check"]["outputs"] == {"FRI": "false", "THU": "true", "DAY": "thu"}, jobs
    assert jobs["on_operating_day"]["status"] == "succeeded"
    assert jobs["on_a_closed_day"]["status"] == "bypassed"
    assert jobs["broken"]["status"] == "failed"
    assert result.returncode == 1
    logs = jaz("status", run["run_id"], "--db", tmp_path / "j.db", cwd=tmp_path)
    assert 'calendar "nowhere" not found' in logs.stdout + logs.stderr


def test_a_jobnets_folder_finds_the_calendars_folder_beside_it(tmp_path: Path) -> None:
    (tmp_path / "jobnets").mkdir()
    (tmp_path / "calendars").mkdir()
    write(tmp_path / "calendars", "days", MON_FRI)
    assert CalendarLibrary().get("days", tmp_path / "jobnets" / "net.toml").name == "days"
    (tmp_path / "other").mkdir()
    with pytest.raises(NotFound):
        CalendarLibrary().get("days", tmp_path / "other" / "net.toml")
