"""The scheduler's policies (jaz/engine/planner.py) with time as an argument.

`Sim` applies the planner's decisions to a list of run records the way the server
does, so each test reads as a timeline: ticks at given instants, runs finishing,
the server going down, the clock jumping.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jaz.engine import planner
from jaz.engine.checks import Collector
from jaz.engine.model import RunState
from jaz.engine.records import RunRecord
from jaz.engine.schedules import bind, parse_schedules

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)   # a Monday


def at(hhmm: str, day: int = 0) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return T0 + timedelta(days=day, hours=h, minutes=m)


class Sim:
    def __init__(self, schedule: dict[str, object], *, ahead: int = 10,
                 hours_ahead: float = 24) -> None:
        c = Collector("sim")
        bound = bind(parse_schedules(c, schedule), UTC, lambda name: None)  # type: ignore
        assert not c.problems, c.problems
        self.entry = planner.Entry(jobnet="net", schedules=bound)
        self.settings = planner.Settings(ahead=timedelta(hours=hours_ahead), max_ahead=ahead)
        self.runs: dict[int, RunRecord] = {}
        self.last_tick: datetime | None = None
        self.log: list[planner.Decision] = []
        self.passes = 0

    def tick(self, now: datetime) -> list[planner.Decision]:
        """One tick, as the server does it: plan and apply until no pass is needed."""
        decisions: list[planner.Decision] = []
        while True:
            unfinished = [r for r in self.runs.values() if not r.status.finished]
            batch = planner.plan(now, self.last_tick, [self.entry], unfinished,
                                 self.settings)
            self.passes += 1
            for d in batch:
                self.apply(d, now)
            decisions += batch
            if not planner.needs_another_pass(batch, now):
                break
        self.last_tick = now if self.last_tick is None else max(now, self.last_tick)
        self.log.extend(decisions)
        return decisions

    def apply(self, d: planner.Decision, now: datetime) -> None:
        if isinstance(d, planner.Create):
            assert all(r.scheduled_at != d.at for r in self.runs.values()), "fired twice"
            rid = len(self.runs) + 1
            self.runs[rid] = RunRecord(id=rid, jobnet=d.jobnet, status=RunState.SCHEDULED,
                                       trigger="schedule", created_at=now, scheduled_at=d.at)
        elif isinstance(d, planner.Cursor):
            assert self.entry.cursor is None or d.at >= self.entry.cursor
            self.entry = replace(self.entry, cursor=d.at)
        elif isinstance(d, planner.Start):
            self.set(d.run_id, status=RunState.RUNNING, trigger=d.trigger, started_at=now)
        elif isinstance(d, planner.Miss):
            self.set(d.run_id, status=RunState.MISSED, message=d.reason)
        elif isinstance(d, planner.Skip):
            self.set(d.run_id, status=RunState.SKIPPED, message=d.reason)
        elif isinstance(d, planner.Stop):
            self.set(d.run_id, status=RunState.STOPPED, message=d.reason)
        elif isinstance(d, planner.Late):
            self.set(d.run_id, warning=f"{planner.LATE_MARK}{d.what}")

    def set(self, run_id: int, **changes: object) -> None:
        self.runs[run_id] = replace(self.runs[run_id], **changes)  # type: ignore[arg-type]

    def finish(self, run_id: int) -> None:
        self.set(run_id, status=RunState.SUCCEEDED)

    def states(self) -> dict[str, str]:
        """{"HH:MM": state} of the runs of day 0, "+1 HH:MM" for the next day."""
        return {_label(r.scheduled_at):
                f"{r.status}" + (f"/{r.trigger}" if r.trigger != "schedule" else "")
                for r in sorted(self.runs.values(), key=lambda r: (r.scheduled_at, r.id))}

    def started(self) -> list[str]:
        return [_label(self.runs[d.run_id].scheduled_at)
                for d in self.log if isinstance(d, planner.Start)]


def _label(when: datetime | None) -> str:
    assert when is not None
    days = (when.date() - T0.date()).days
    return when.strftime("%H:%M") if days == 0 else f"+{days} {when:%H:%M}"


HOURLY = {"cron": "0 * * * *"}


def test_fires_are_materialised_ahead_up_to_the_cap_and_topped_up() -> None:
    sim = Sim(HOURLY, ahead=3)
    sim.tick(at("10:30"))
    assert sim.states() == {"11:00": "scheduled", "12:00": "scheduled", "13:00": "scheduled"}
    assert sim.entry.cursor == at("13:00")
    assert sim.tick(at("10:31")) == []                 # nothing new: the cap is reached
    sim.tick(at("11:00"))
    assert sim.states()["11:00"] == "running"
    assert "14:00" in sim.states()                     # one slot freed, one more fire


def test_materialising_stops_at_the_horizon() -> None:
    sim = Sim(HOURLY, ahead=100, hours_ahead=2.5)
    sim.tick(at("10:30"))
    assert list(sim.states()) == ["11:00", "12:00", "13:00"]
    assert sim.entry.cursor == at("13:00")


def test_a_new_jobnet_starts_from_now_with_no_catch_up_of_the_past() -> None:
    sim = Sim({**HOURLY, "catchup": "all"}, ahead=2)
    sim.tick(at("10:30"))
    assert list(sim.states()) == ["11:00", "12:00"]


def test_due_runs_start_on_time_and_each_fire_once() -> None:
    sim = Sim(HOURLY, ahead=2)
    for second in range(0, 3 * 3600 + 1, 25):          # a tick every 25 s for 3 hours
        sim.tick(at("10:00") + timedelta(seconds=second))
        for r in list(sim.runs.values()):
            if r.status == RunState.RUNNING:
                sim.finish(r.id)
    assert sim.started() == ["11:00", "12:00", "13:00"]


@pytest.mark.parametrize("overlap,expected,started", [
    ("allow", {"11:00": "running", "12:00": "running"}, ["11:00", "12:00"]),
    ("skip", {"11:00": "running", "12:00": "skipped"}, ["11:00"]),
    ("wait", {"11:00": "running", "12:00": "scheduled"}, ["11:00"]),
    ("replace", {"11:00": "stopped", "12:00": "running"}, ["11:00", "12:00"]),
])
def test_overlap_policies(overlap: str, expected: dict[str, str], started: list[str]) -> None:
    sim = Sim({**HOURLY, "overlap": overlap}, ahead=2)
    sim.tick(at("10:30"))
    sim.tick(at("11:00"))
    sim.tick(at("12:00"))
    assert {k: v for k, v in sim.states().items() if k in ("11:00", "12:00")} == expected
    assert sim.started() == started


def test_a_waiting_run_starts_when_the_earlier_one_ends_even_hours_later() -> None:
    sim = Sim({**HOURLY, "overlap": "wait"}, ahead=2)
    sim.tick(at("10:30"))
    sim.tick(at("11:00"))
    for minute in range(0, 150, 10):                   # the 11:00 run takes until 13:25
        sim.tick(at("12:00") + timedelta(minutes=minute))
    assert sim.states()["12:00"] == "scheduled"
    first = next(r.id for r in sim.runs.values() if r.scheduled_at == at("11:00"))
    sim.finish(first)
    sim.tick(at("14:31"))
    assert sim.states()["12:00"] == "running"          # waited; never taken for missed


@pytest.mark.parametrize("catchup,window,now,expected", [
    # the server was down from 01:30; hourly fires at 02:00..05:00 were materialised
    ("none", None, "05:00", {"02:00": "missed", "03:00": "missed", "04:00": "missed",
                             "05:00": "running"}),
    ("none", None, "05:10", {"02:00": "missed", "03:00": "missed", "04:00": "missed",
                             "05:00": "missed"}),
    ("latest", None, "05:10", {"02:00": "missed", "03:00": "missed", "04:00": "missed",
                               "05:00": "running/catch-up"}),
    ("latest", None, "05:00", {"02:00": "missed", "03:00": "missed", "04:00": "missed",
                               "05:00": "running"}),       # on time: nothing to catch up
    ("all", None, "05:10", {"02:00": "running/catch-up", "03:00": "running/catch-up",
                            "04:00": "running/catch-up", "05:00": "running/catch-up"}),
    ("all", "2h", "05:10", {"02:00": "missed", "03:00": "missed",
                            "04:00": "running/catch-up", "05:00": "running/catch-up"}),
    ("latest", "1m", "05:10", {"02:00": "missed", "03:00": "missed", "04:00": "missed",
                               "05:00": "missed"}),
])
def test_catch_up_after_the_server_was_down(catchup: str, window: str | None, now: str,
                                            expected: dict[str, str]) -> None:
    schedule: dict[str, object] = {**HOURLY, "catchup": catchup, "overlap": "allow"}
    if window:
        schedule["catchup_window"] = window
    sim = Sim(schedule, ahead=4)
    sim.tick(at("01:30"))                              # materialises 02:00..05:00
    # ... down until `now`
    sim.tick(at(now))
    assert {k: v for k, v in sim.states().items() if k <= "05:00"} == expected
    assert all(isinstance(d, planner.Miss) and "not running" in d.reason
               for d in sim.log if isinstance(d, planner.Miss))


def test_a_long_downtime_records_every_missed_fire_in_bounded_batches() -> None:
    sim = Sim({"cron": "* * * * *", "catchup": "none"}, ahead=2)
    sim.settings = planner.Settings(max_ahead=2, max_past=500)
    sim.tick(at("00:00"))                              # 00:01 and 00:02 materialised
    passes = sim.passes
    sim.tick(at("00:00", day=1) + timedelta(seconds=30))   # down for a day
    assert sim.passes - passes == 4                    # 500 + 500 + 438 (+ the future)
    states = sim.states()
    missed = [k for k, v in states.items() if v == "missed"]
    assert len(missed) == 1439                         # 00:01 .. 23:59, each recorded
    assert states["+1 00:00"] == "running"             # 30 s late: within the grace
    assert len({r.scheduled_at for r in sim.runs.values()}) == len(sim.runs)


def test_fires_never_materialised_before_a_downtime_are_caught_up_too() -> None:
    sim = Sim({**HOURLY, "catchup": "latest"}, ahead=1)
    sim.tick(at("01:30"))                              # only 02:00 exists
    sim.tick(at("05:10"))
    states = sim.states()
    assert states["02:00"] == "missed" and states["05:00"] == "running/catch-up"
    assert states["03:00"] == "missed" and states["04:00"] == "missed"


def test_a_clock_stepping_back_never_fires_twice() -> None:
    sim = Sim({**HOURLY, "overlap": "allow"}, ahead=3)
    sim.tick(at("10:59"))
    sim.tick(at("11:00"))
    sim.tick(at("10:00"))                              # NTP steps back an hour
    sim.tick(at("10:30"))
    sim.tick(at("11:00"))
    sim.tick(at("12:00"))
    assert sim.started() == ["11:00", "12:00"]         # Sim.apply asserts no fire twice


def test_a_clock_jumping_forward_is_a_downtime() -> None:
    sim = Sim({**HOURLY, "catchup": "none"}, ahead=3)
    sim.tick(at("10:59"))
    sim.tick(at("13:30"))                              # the machine slept
    assert sim.states() == {"11:00": "missed", "12:00": "missed", "13:00": "missed",
                            "14:00": "scheduled", "15:00": "scheduled", "16:00": "scheduled"}
    assert sim.entry.cursor == at("16:00")


def test_held_runs_wait_and_start_when_released_late() -> None:
    sim = Sim(HOURLY, ahead=2)
    sim.tick(at("10:30"))
    held = next(r.id for r in sim.runs.values() if r.scheduled_at == at("11:00"))
    sim.set(held, status=RunState.HELD)
    sim.tick(at("11:00"))
    sim.tick(at("11:40"))
    assert sim.states()["11:00"] == "held"
    sim.set(held, status=RunState.SCHEDULED)           # released by an operator at 11:45
    sim.tick(at("11:45"))
    assert sim.states()["11:00"] == "running"


def test_a_late_start_outside_the_window_is_missed() -> None:
    sim = Sim({"cron": "*/30 * * * *", "window": "08:00-09:00", "catchup": "latest"}, ahead=2)
    sim.tick(at("07:00"))                              # 08:00, 08:30 materialised
    sim.tick(at("09:10"))                              # down through the window
    assert sim.states()["08:30"] == "missed"
    assert any(isinstance(d, planner.Miss) and "window" in d.reason for d in sim.log)


def test_a_late_start_inside_the_window_runs() -> None:
    sim = Sim({"cron": "*/30 * * * *", "window": "08:00-09:00", "catchup": "latest"}, ahead=2)
    sim.tick(at("07:00"))
    sim.tick(at("08:40"))
    assert sim.states()["08:30"] == "running/catch-up"
    assert sim.states()["08:00"] == "missed"


def test_deadlines_flag_lateness_once() -> None:
    sim = Sim({"times": ["02:00"], "overlap": "wait",
               "deadline": {"start_by": "02:15", "finish_by": "03:00"}}, ahead=2)
    sim.tick(at("01:00"))
    sim.tick(at("02:00"))                              # day 0 starts on time
    sim.tick(at("02:30"))
    sim.tick(at("03:01"))                              # still running after finish_by
    sim.tick(at("03:05"))
    lates = [(d.what, d.deadline) for d in sim.log if isinstance(d, planner.Late)]
    assert lates == [("finish_by", at("03:00"))]
    first = next(r.id for r in sim.runs.values() if r.scheduled_at == at("02:00"))
    sim.tick(at("02:00", day=1))                       # day 1 waits behind day 0 (wait)
    sim.tick(at("02:16", day=1))
    sim.tick(at("02:20", day=1))
    lates = [(d.what, d.deadline) for d in sim.log if isinstance(d, planner.Late)]
    assert lates[1:] == [("start_by", at("02:15", day=1))]
    sim.finish(first)
    sim.tick(at("02:40", day=1))                       # day 1 starts, late
    sim.tick(at("03:01", day=1))                       # and is late to finish too
    sim.tick(at("03:05", day=1))
    lates = [(d.what, d.deadline) for d in sim.log if isinstance(d, planner.Late)]
    assert lates[1:] == [("start_by", at("02:15", day=1)), ("finish_by", at("03:00", day=1))]


def test_without_schedules_nothing_happens() -> None:
    entry = planner.Entry(jobnet="manual", schedules=())
    assert planner.plan(at("10:00"), None, [entry], []) == []
