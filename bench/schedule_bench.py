"""`make bench`, calendars and schedules: a year of fires for 1,000 jobnets with
calendar-filtered schedules, and the operating days of 100 calendars over 10 years.

Calendars are real TOML files (Japanese, German, US and British holidays; month-end,
first/last operating day and gotobi filters), loaded through the same library the
CLI uses. Each figure is the best of a few runs in a fresh process state (calendar
memos are dropped between runs; the `holidays` package's own import is timed apart).
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaz.engine import calendars as cal_module  # noqa: E402
from jaz.engine.calendars import CalendarLibrary, operating_days  # noqa: E402
from jaz.engine.checks import Collector  # noqa: E402
from jaz.engine.schedules import bind, fires_between, parse_schedules  # noqa: E402

BASES = {
    "jp-business": 'weekdays = ["mon","tue","wed","thu","fri"]\nholidays = "JP"\n'
                   'exclude = ["2026-12-30..2027-01-03"]\n',
    "de-business": 'weekdays = ["mon","tue","wed","thu","fri"]\nholidays = "DE-BY"\n',
    "us-business": 'weekdays = ["mon","tue","wed","thu","fri"]\nholidays = "US-NY"\n',
    "gb-business": 'weekdays = ["mon","tue","wed","thu","fri"]\nholidays = "GB"\n',
    "jp-six-day": 'weekdays = ["mon","tue","wed","thu","fri","sat"]\nholidays = "JP"\n',
}
FILTERS = {
    "month-end": 'day_of_month = [-1]\nshift = "previous"\n',
    "month-start": 'operating_day_of_month = [1]\n',
    "gotobi": 'day_of_month = [5, 10, 15, 20, 25, -1]\nshift = "previous"\n',
    "payday": 'day_of_month = [25]\nshift = "next"\n',
    "last-two": 'operating_day_of_month = [-2, -1]\n',
}
SCHEDULES = [
    'times = ["02:30"]\ncalendar = "{base}"\n',
    'times = ["01:00", "25:30"]\ncalendar = "{base}-{filter}"\n',
    'cron = "0 6 * * 1-5"\ncalendar = "{base}"\n',
    'times = ["22:00"]\ncalendar = "{base}-{filter}"\ntimezone = "Europe/Berlin"\n',
    'every = "2h"\nwindow = "08:00-18:00"\ncalendar = "{base}"\n',
]


def write_calendars(folder: Path) -> list[str]:
    names = []
    for base, body in BASES.items():
        (folder / f"{base}.toml").write_text(f'name = "{base}"\n{body}')
        names.append(base)
        for flt, fbody in FILTERS.items():
            (folder / f"{base}-{flt}.toml").write_text(
                f'name = "{base}-{flt}"\nbase = "{base}"\n{fbody}')
            names.append(f"{base}-{flt}")
    return names


def year_of_fires(folder: Path) -> tuple[float, int]:
    rng = random.Random(7)
    library = CalendarLibrary((folder,))
    tokyo = ZoneInfo("Asia/Tokyo")
    start = time.perf_counter()
    fires = 0
    for _ in range(1000):
        text = rng.choice(SCHEDULES).format(base=rng.choice(list(BASES)),
                                            filter=rng.choice(list(FILTERS)))
        import tomllib

        schedules = parse_schedules(Collector("bench"), tomllib.loads(text))
        bound = bind(schedules, tokyo, lambda name: library.get(name, None))
        fires += len(fires_between(bound, datetime(2026, 12, 31, 15, tzinfo=UTC),
                                   datetime(2027, 12, 31, 15, tzinfo=UTC)))
    return time.perf_counter() - start, fires


def calendars_for_ten_years(folder: Path, names: list[str]) -> tuple[float, int]:
    chosen = [names[i % len(names)] for i in range(100)]
    start = time.perf_counter()
    days = 0
    for name in chosen:   # each loaded afresh, its bases too: nothing memoised across
        calendar = CalendarLibrary((folder,)).get(name, None)
        days += len(operating_days(calendar, date(2026, 1, 1), date(2035, 12, 31)))
    return time.perf_counter() - start, days


def main() -> None:
    t0 = time.perf_counter()
    import holidays  # noqa: F401

    print(f"holidays package import: {time.perf_counter() - t0:.3f} s (once per process)")
    results: dict[str, list[float]] = {"fires": [], "days": []}
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = write_calendars(folder)
        for _ in range(3):
            cal_module._HOLIDAY_CACHE.clear()
            took, counts["days"] = calendars_for_ten_years(folder, names)
            results["days"].append(took)
            cal_module._HOLIDAY_CACHE.clear()
            took, counts["fires"] = year_of_fires(folder)
            results["fires"].append(took)
    fires, days = min(results["fires"]), min(results["days"])
    print(f"a year of fires, 1,000 jobnets on calendars: {fires:.3f} s "
          f"({counts['fires']} fires, {statistics.median(results['fires']):.3f} s median) "
          f"target < 1 s: {'ok' if fires < 1 else 'MISSED'}")
    print(f"100 calendars x 10 years of operating days: {days:.3f} s "
          f"({counts['days']} days, {statistics.median(results['days']):.3f} s median) "
          f"target < 1 s: {'ok' if days < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
