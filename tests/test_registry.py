"""The server's registry of jobnets and calendars (issue 4, SPEC §1.5): real files in a
temporary folder, loaded, changed, broken, fixed and removed between reloads."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jaz.engine.clock import FakeClock
from jaz.engine.schedules import next_fires
from jaz.errors import JobnetInvalid, NotFound
from jaz.server.registry import Registry

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TOKYO = ZoneInfo("Asia/Tokyo")

PLAIN = """
[jobs.a]
run = "echo {v}"
"""

SCHEDULED = """
[schedule]
times = ["09:00"]
calendar = "{calendar}"

[jobs.a]
run = "echo {v}"
"""

WEEKLY = 'weekdays = ["{day}"]\n'


class Folders:
    """A server's two folders, and a clock that moves one second per write so that every
    change has its own mtime (tests write faster than the file system's clock ticks)."""

    def __init__(self, root: Path) -> None:
        self.jobnets = root / "jobnets"
        self.calendars = root / "calendars"
        self.jobnets.mkdir()
        self.calendars.mkdir()
        self.clock = FakeClock(T0)
        self._mtime = 1_700_000_000
        self.registry = Registry(self.jobnets, self.calendars, TOKYO, clock=self.clock)

    def write(self, path: Path, text: str) -> Path:
        path.write_text(text)
        self._mtime += 1
        os.utime(path, ns=(self._mtime * 10**9, self._mtime * 10**9))
        return path

    def jobnet(self, stem: str, text: str) -> Path:
        return self.write(self.jobnets / f"{stem}.toml", text)

    def calendar(self, stem: str, text: str) -> Path:
        return self.write(self.calendars / f"{stem}.toml", text)

    def reload(self) -> list[str]:
        self.clock.advance(60)
        return self.registry.reload()


@pytest.fixture
def f(tmp_path: Path) -> Folders:
    return Folders(tmp_path)


def weekdays_of(loaded, n: int = 4) -> set[int]:
    return {fire.at.weekday() for fire in next_fires(loaded.schedules, T0, n)}


# ------------------------------------------------------------------ loading


def test_loads_the_toml_files_of_both_folders_and_nothing_else(f):
    f.jobnet("etl", SCHEDULED.format(calendar="biz", v=1))
    f.jobnet("backup", PLAIN.format(v=1))
    f.write(f.jobnets / "notes.txt", "not a jobnet")
    f.write(f.jobnets / ".hidden.toml", "broken = [")
    (f.jobnets / "sub").mkdir()
    f.write(f.jobnets / "sub" / "deep.toml", PLAIN.format(v=1))
    (f.jobnets / "dir.toml").mkdir()
    (f.jobnets / "dangling.toml").symlink_to(f.jobnets / "nowhere.toml")
    f.calendar("biz", WEEKLY.format(day="mon"))

    assert f.reload() == ["backup", "etl"]
    assert [e.name for e in f.registry.all()] == ["backup", "etl"]
    etl = f.registry.get("etl")
    assert (etl.path, etl.problems, etl.loaded_at) == (f.jobnets / "etl.toml", (), f.clock.now())
    assert etl.jobnet is not None and list(etl.jobnet.jobs) == ["a"]
    assert etl.schedules[0].calendar is f.registry.calendar("biz")
    assert etl.schedules[0].zone == TOKYO
    assert weekdays_of(etl) == {0}
    assert f.registry.get("backup").schedules == ()
    assert [(n, p, c is not None, pr) for n, p, c, pr in f.registry.calendars()] == [
        ("biz", f.calendars / "biz.toml", True, ())]


def test_missing_folders_are_empty(tmp_path):
    registry = Registry(tmp_path / "no-jobnets", tmp_path / "no-calendars", TOKYO)
    assert registry.reload() == []
    assert registry.all() == [] and registry.calendars() == []
    with pytest.raises(NotFound):
        registry.get("etl")


def test_a_name_key_names_the_jobnet_and_unknown_names_hint_at_close_ones(f):
    f.jobnet("file-name", 'name = "nightly-etl"\n' + PLAIN.format(v=1))
    f.calendar("cal", 'name = "business-days"\n' + WEEKLY.format(day="mon"))
    f.reload()
    assert f.registry.get("nightly-etl").path == f.jobnets / "file-name.toml"
    with pytest.raises(NotFound, match="no jobnet 'nightly-elt'") as e:
        f.registry.get("nightly-elt")
    assert e.value.hint is not None and "'nightly-etl'" in e.value.hint
    assert f.registry.calendar("business-days") is f.registry.calendar("cal")
    with pytest.raises(NotFound) as e:
        f.registry.calendar("busines-days")
    assert e.value.hint is not None and "'business-days'" in e.value.hint


# ------------------------------------------------------------------ changes


def test_an_update_is_a_new_version_and_the_old_one_is_left_alone(f):
    f.jobnet("etl", PLAIN.format(v=1))
    f.reload()
    first = f.registry.get("etl")
    f.jobnet("etl", PLAIN.format(v=22))
    assert f.reload() == ["etl"]
    second = f.registry.get("etl")
    assert second.jobnet is not None and first.jobnet is not None
    assert second.jobnet.hash != first.jobnet.hash
    assert "echo 22" in second.jobnet.text and "echo 1" in first.jobnet.text  # runs keep theirs
    assert second.loaded_at > first.loaded_at


def test_touching_a_file_without_changing_it_is_no_new_version(f):
    path = f.jobnet("etl", PLAIN.format(v=1))
    f.reload()
    before = f.registry.get("etl")
    f.write(path, PLAIN.format(v=1))
    assert f.reload() == []
    assert f.registry.get("etl") is before


def test_a_broken_file_leaves_the_previous_version_in_force_until_fixed(f):
    f.jobnet("etl", PLAIN.format(v=1))
    f.reload()
    good = f.registry.get("etl")
    f.jobnet("etl", '[jobs.a]\nrun = "echo 2"\ncolour = "red"\n')
    assert f.reload() == ["etl"]
    broken = f.registry.get("etl")
    assert broken.jobnet is good.jobnet and broken.loaded_at == good.loaded_at
    assert [(p.job, p.field) for p in broken.problems] == [("a", "colour")]
    assert 'unknown key "colour"' in str(broken.problems[0])

    f.jobnet("etl", "[jobs.a\n")          # worse: not even TOML, the name is still known
    f.reload()
    assert f.registry.get("etl").jobnet is good.jobnet
    assert f.registry.get("etl").problems[0].line == 1

    f.jobnet("etl", PLAIN.format(v=3))
    assert f.reload() == ["etl"]
    fixed = f.registry.get("etl")
    assert fixed.problems == () and fixed.jobnet is not None and "echo 3" in fixed.jobnet.text


def test_a_file_that_was_never_valid_is_listed_with_its_problems(f):
    f.jobnet("etl", 'name = "nightly"\n[jobs.a]\nneeds = ["zz"]\nrun = "x"\n')
    assert f.reload() == ["nightly"]
    entry = f.registry.get("nightly")
    assert entry.jobnet is None and entry.schedules == ()
    assert 'unknown job "zz"' in entry.problems[0].message


def test_a_removed_file_removes_its_entry(f):
    path = f.jobnet("etl", PLAIN.format(v=1))
    f.jobnet("other", PLAIN.format(v=1))
    f.reload()
    path.unlink()
    assert f.reload() == ["etl"]
    assert [e.name for e in f.registry.all()] == ["other"]
    with pytest.raises(NotFound):
        f.registry.get("etl")


def test_renaming_a_jobnet_inside_its_file_moves_the_entry(f):
    f.jobnet("etl", PLAIN.format(v=1))
    f.reload()
    f.jobnet("etl", 'name = "etl2"\n' + PLAIN.format(v=1))
    assert f.reload() == ["etl", "etl2"]
    assert [e.name for e in f.registry.all()] == ["etl2"]


def test_two_files_with_one_name_are_both_reported_and_the_one_in_force_stays(f):
    f.jobnet("z-first", 'name = "etl"\n' + PLAIN.format(v=1))
    f.reload()
    in_force = f.registry.get("etl").jobnet
    f.jobnet("a-second", 'name = "etl"\n' + PLAIN.format(v=2))
    assert f.reload() == ["etl"]
    entry = f.registry.get("etl")
    assert entry.jobnet is in_force and entry.path == f.jobnets / "z-first.toml"
    by_file = {p.file: p.message for p in entry.problems}
    assert set(by_file) == {str(f.jobnets / "z-first.toml"), str(f.jobnets / "a-second.toml")}
    assert "a-second.toml" in by_file[str(f.jobnets / "z-first.toml")]
    assert "z-first.toml" in by_file[str(f.jobnets / "a-second.toml")]

    (f.jobnets / "z-first.toml").unlink()
    f.reload()
    entry = f.registry.get("etl")
    assert entry.problems == () and entry.path == f.jobnets / "a-second.toml"
    assert entry.jobnet is not None and "echo 2" in entry.jobnet.text


def test_a_calendar_in_the_jobnets_folder_is_reported_as_misplaced(f):
    f.jobnet("biz", WEEKLY.format(day="mon"))
    f.reload()
    (problem,) = f.registry.get("biz").problems
    assert "looks like a calendar" in problem.message and str(f.calendars) in problem.message


# ------------------------------------------------------------------ calendars


def test_a_changed_calendar_binds_the_schedules_again(f):
    f.calendar("biz", WEEKLY.format(day="mon"))
    f.jobnet("etl", SCHEDULED.format(calendar="biz", v=1))
    f.jobnet("plain", PLAIN.format(v=1))
    f.reload()
    before = f.registry.get("etl")
    old_calendar = f.registry.calendar("biz")
    f.calendar("biz", WEEKLY.format(day="wed"))
    assert f.reload() == ["etl"]
    after = f.registry.get("etl")
    assert after.jobnet is before.jobnet and after.loaded_at == before.loaded_at
    assert after.schedules[0].calendar is f.registry.calendar("biz") is not old_calendar
    assert weekdays_of(before) == {0} and weekdays_of(after) == {2}  # the old binding is intact
    assert f.registry.library.get("biz", before.jobnet.path) is f.registry.calendar("biz")


def test_a_filter_calendar_follows_a_change_of_its_base(f):
    f.calendar("biz", WEEKLY.format(day="mon"))
    f.calendar("first", 'base = "biz"\noperating_day_of_month = [1]\n')
    f.jobnet("etl", SCHEDULED.format(calendar="first", v=1))
    f.reload()
    f.calendar("biz", WEEKLY.format(day="fri"))
    assert f.reload() == ["etl"]
    first = f.registry.calendar("first")
    assert first.base is f.registry.calendar("biz")
    assert weekdays_of(f.registry.get("etl"), 3) == {4}


def test_a_jobnet_needs_its_calendar_and_keeps_its_binding_when_it_goes(f):
    f.jobnet("etl", SCHEDULED.format(calendar="biz", v=1))
    f.reload()
    entry = f.registry.get("etl")
    assert entry.jobnet is None
    assert [p.field for p in entry.problems] == ["schedule.calendar"]
    assert "calendar 'biz' is not in the calendars folder" in entry.problems[0].message

    path = f.calendar("biz", WEEKLY.format(day="mon"))
    assert f.reload() == ["etl"]
    bound = f.registry.get("etl")
    assert bound.jobnet is not None and bound.problems == ()

    path.unlink()
    assert f.reload() == ["etl"]
    gone = f.registry.get("etl")
    assert gone.jobnet is bound.jobnet and gone.schedules is bound.schedules
    assert [p.field for p in gone.problems] == ["schedule.calendar"]
    assert f.registry.calendars() == []


def test_an_invalid_calendar_file_keeps_its_previous_calendar_in_force(f):
    f.calendar("biz", WEEKLY.format(day="mon"))
    f.jobnet("etl", SCHEDULED.format(calendar="biz", v=1))
    f.reload()
    good = f.registry.calendar("biz")
    schedules = f.registry.get("etl").schedules
    f.calendar("biz", 'weekdays = ["funday"]\n')
    assert f.reload() == []                       # the jobnet is unaffected
    ((name, _, calendar, problems),) = f.registry.calendars()
    assert (name, calendar) == ("biz", good)
    assert 'unknown weekday "funday"' in problems[0].message
    assert f.registry.calendar("biz") is good
    assert f.registry.get("etl").schedules is schedules

    f.calendar("biz", WEEKLY.format(day="thu"))
    assert f.reload() == ["etl"]
    assert f.registry.calendars()[0][3] == ()
    assert weekdays_of(f.registry.get("etl")) == {3}


def test_a_calendar_that_was_never_valid_cannot_be_used(f):
    f.calendar("biz", "weekdays = 3\n")
    f.jobnet("etl", SCHEDULED.format(calendar="biz", v=1))
    f.reload()
    with pytest.raises(JobnetInvalid, match="weekday"):
        f.registry.calendar("biz")
    entry = f.registry.get("etl")
    assert entry.jobnet is None
    assert 'calendar "biz" is invalid' in entry.problems[0].message
    assert any(p.file == str(f.calendars / "biz.toml") for p in entry.problems)


def test_a_calendar_referenced_by_path_outside_the_folder_is_watched(f, tmp_path):
    shared = f.write(tmp_path / "shared.toml", WEEKLY.format(day="mon"))
    f.jobnet("etl", SCHEDULED.format(calendar="../shared.toml", v=1))
    f.reload()
    assert weekdays_of(f.registry.get("etl")) == {0}
    assert f.reload() == []
    f.write(shared, WEEKLY.format(day="sat"))
    assert f.reload() == ["etl"]
    assert weekdays_of(f.registry.get("etl")) == {5}


# ------------------------------------------------------------------ cheapness, threads, logs


def test_unchanged_files_are_not_read_again(f):
    jobnet = f.jobnet("etl", SCHEDULED.format(calendar="biz", v=1))
    calendar = f.calendar("biz", WEEKLY.format(day="mon"))
    f.reload()
    entry, cal = f.registry.get("etl"), f.registry.calendar("biz")
    assert f.reload() == []
    assert f.registry.get("etl") is entry and f.registry.calendar("biz") is cal
    # same size, same mtime, same inode: the registry cannot tell, so it did not read them
    for path, text in ((jobnet, SCHEDULED.format(calendar="biz", v=9)),
                       (calendar, WEEKLY.format(day="tue"))):
        st = path.stat()
        with path.open("r+") as fh:
            fh.write(text)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.reload() == []
    assert f.registry.get("etl").jobnet is entry.jobnet and f.registry.calendar("biz") is cal
    # another file coming along leaves the others' objects alone
    f.jobnet("other", PLAIN.format(v=1))
    f.calendar("other-cal", WEEKLY.format(day="sun"))
    assert f.reload() == ["other"]          # etl was bound again, to the very same calendar
    assert f.registry.get("etl") is entry and f.registry.calendar("biz") is cal


def test_a_file_changed_twice_within_one_timestamp_tick_is_read_again(f):
    # two saves of the same size within the file system's clock tick leave the same stat:
    # a file changed that recently is read at every reload until it has settled
    path = f.jobnets / "etl.toml"
    path.write_text(PLAIN.format(v=1))
    stamp = time.time_ns() + 10**10   # (changed "just now" for the whole test)
    os.utime(path, ns=(stamp, stamp))
    f.reload()
    first = f.registry.get("etl")
    with path.open("r+") as fh:
        fh.write(PLAIN.format(v=2))
    os.utime(path, ns=(stamp, stamp))
    assert f.reload() == ["etl"]
    assert "echo 2" in f.registry.get("etl").jobnet.text and "echo 1" in first.jobnet.text
    settled = f.registry.get("etl")
    assert f.reload() == [] and f.registry.get("etl") is settled   # read, but the same


def test_readers_never_see_a_half_done_reload(f):
    f.calendar("biz", WEEKLY.format(day="mon"))
    f.jobnet("etl", SCHEDULED.format(calendar="biz", v=0))
    f.reload()
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                entry = f.registry.get("etl")
                assert entry.jobnet is not None and entry.schedules
                assert [e.name for e in f.registry.all()][0] == "etl"
                f.registry.calendar("biz").is_operating(T0.date())
                f.registry.library.get("biz")
                reads[0] += 1
        except BaseException as e:   # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 40):
            f.jobnet("etl", SCHEDULED.format(calendar="biz", v=i))
            f.jobnet(f"extra{i % 3}", PLAIN.format(v=i) if i % 2 else "broken = [")
            f.calendar("biz", WEEKLY.format(day=("mon", "tue", "wed")[i % 3]))
            assert "etl" in f.reload()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert "echo 39" in (f.registry.get("etl").jobnet.text)


def test_each_change_is_logged(f, caplog):
    caplog.set_level(logging.INFO, logger="jaz.server")
    path = f.jobnet("etl", PLAIN.format(v=1))
    f.reload()
    f.jobnet("etl", PLAIN.format(v=2))
    f.reload()
    f.jobnet("etl", "colour = 1\n" + PLAIN.format(v=3))
    f.reload()
    path.unlink()
    f.reload()
    messages = [r.getMessage() for r in caplog.records if r.name == "jaz.server"]
    assert [m.split(" (")[0] for m in messages] == [
        "jobnet etl loaded from " + str(path), "jobnet etl updated from " + str(path),
        "jobnet etl invalid", "jobnet etl removed"]
    assert "stays in force" in messages[2] and 'unknown key "colour"' in messages[2]
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO", "WARNING", "INFO"]


def test_a_base_name_that_comes_to_mean_another_file_is_followed(f):
    f.calendar("holder", 'name = "biz"\n' + WEEKLY.format(day="mon"))
    f.calendar("first", 'base = "biz"\noperating_day_of_month = [1]\n')
    f.reload()
    assert f.registry.calendar("first").base is f.registry.calendar("holder")
    f.calendar("biz", WEEKLY.format(day="tue"))    # a file name beats a `name` key
    f.reload()
    assert f.registry.calendar("first").base is f.registry.calendar("biz")
    assert f.registry.calendar("biz").weekdays == frozenset({1})
