"""The server's scheduler loop over a real core and store, on a fake clock (runs are not
driven: `Core.drive_all` is recorded instead), and the cheap paths that keep an idle server
with thousands of jobnets idle: quiet jobnets, unchanged folders, fewer wake-ups."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

from jaz.engine.clock import FakeClock
from jaz.engine.model import RunState
from jaz.server import daemon
from jaz.server.config import parse_config
from jaz.server.core import Core
from jaz.server.scheduler import ARM_LEAD, IDLE, QUIET, Scheduler

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)      # a Monday


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TZ", "UTC")
    nets = tmp_path / "jobnets"
    nets.mkdir()

    class Env:
        folder = nets
        clock = FakeClock(T0)
        driven: list[int] = []

        def core(self, extra: str = "") -> Core:
            config = parse_config(f'jobnets = "{nets}"\ncalendars = "{tmp_path / "cal"}"\n'
                                  f'database = "{tmp_path / "jaz.db"}"\n{extra}')
            core = Core(config, clock=self.clock)
            core.drive_all = lambda runs, **k: self.driven.extend(  # type: ignore
                run_id for run_id, _ in runs)
            return core

    return Env()


def cursor(core: Core, name: str) -> str | None:
    return core.store.get_state(f"scheduler.cursor.{name}")


def test_a_quiet_jobnet_is_planned_again_after_quiet_or_when_it_changes(env: Any) -> None:
    (env.folder / "yearly.toml").write_text('[schedule]\ncron = "0 3 1 1 *"\n'
                                            '[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    scheduler.tick(env.clock.now())
    first = cursor(core, "yearly")
    assert first == (T0 + timedelta(hours=24)).isoformat()   # planned: the cursor moved
    env.clock.advance(60)
    scheduler.tick(env.clock.now())
    assert cursor(core, "yearly") == first                   # quiet: left alone
    env.clock.advance(QUIET.total_seconds())
    scheduler.tick(env.clock.now())
    second = cursor(core, "yearly")
    assert second is not None and second > first             # planned again
    env.clock.advance(1)
    scheduler.tick(env.clock.now())
    assert cursor(core, "yearly") == second                  # and quiet again
    # a changed schedule is planned at once, quiet or not
    (env.folder / "yearly.toml").write_text('[schedule]\ncron = "0 4 1 1 *"\n'
                                            '[jobs.a]\nrun = "true"\n')
    os.utime(env.folder / "yearly.toml", ns=(1, 1))
    assert core.registry.reload() == ["yearly"]
    env.clock.advance(1)
    scheduler.tick(env.clock.now())
    assert cursor(core, "yearly") == (env.clock.now() + timedelta(hours=24)).isoformat()


def test_due_fires_start_and_the_next_tick_is_the_next_fire(env: Any) -> None:
    (env.folder / "minutely.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                              '[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    due = scheduler.tick(env.clock.now())
    assert due == T0 + timedelta(seconds=5)          # IDLE comes before the next minute
    env.clock.advance(59)
    assert scheduler.tick(env.clock.now()) == T0 + timedelta(minutes=1)
    env.clock.advance(1)
    scheduler.tick(env.clock.now())
    started = core.store.list_runs(status=[RunState.RUNNING])
    assert [r.scheduled_at for r in started] == [T0 + timedelta(minutes=1)]
    assert env.driven == [started[0].id]
    # the fire taken leaves room for one more: materialised, still ten ahead
    waiting = core.store.list_runs(status=[RunState.SCHEDULED])
    assert len(waiting) == 10
    assert max(r.scheduled_at for r in waiting) == T0 + timedelta(minutes=11)


def test_a_run_for_later_starts_at_its_time(env: Any) -> None:
    (env.folder / "manual.toml").write_text('[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    at = T0 + timedelta(seconds=2)
    run_id = core.start("manual", at=at)
    assert core.wake.is_set()
    assert scheduler.tick(env.clock.now()) == at
    env.clock.advance(2)
    assert scheduler.tick(env.clock.now()) == env.clock.now() + IDLE
    assert core.store.get_run(run_id).status == RunState.RUNNING
    assert env.driven == [run_id]


def test_the_scheduler_is_woken_only_when_it_has_something_to_do(env: Any) -> None:
    (env.folder / "plain.toml").write_text('[jobs.a]\nrun = "true"\n')
    (env.folder / "waits.toml").write_text('[schedule]\ncron = "0 3 * * *"\n'
                                           'overlap = "wait"\n[jobs.a]\nrun = "true"\n')
    core = env.core()
    core.start("plain", hold=True)
    assert not core.wake.is_set()                    # held: nothing for the scheduler
    assert not core._may_be_awaited("plain")         # its end cannot release a waiting run
    assert core._may_be_awaited("waits")             # overlap = wait: look again at once
    assert core._may_be_awaited("gone")              # no longer known: look anyway


def test_an_unchanged_folder_is_not_loaded_again(env: Any) -> None:
    (env.folder / "a.toml").write_text('[jobs.a]\nrun = "true"\n')
    os.utime(env.folder / "a.toml", ns=(10**18, 10**18))   # settled (not changed just now,
    core = env.core()                                    # which is read again: registry.py)
    state = core.registry._state
    assert core.registry.reload() == []
    assert core.registry._state is state             # no new snapshot
    (env.folder / "b.toml").write_text('[jobs.b]\nrun = "true"\n')
    assert core.registry.reload() == ["b"]
    (env.folder / "b.toml").write_text('[jobs.c]\nrun = "true"\n')   # same size, in place
    os.utime(env.folder / "b.toml", ns=(2, 2))
    core.registry.reload()
    assert set(core.registry.get("b").jobnet.jobs) == {"c"}


def test_folders_are_looked_at_less_often_when_a_look_is_costly() -> None:
    assert daemon.reload_pause(0.001) == daemon.RELOAD_EVERY
    assert daemon.reload_pause(0.030) == pytest.approx(6.0)
    assert daemon.reload_pause(5.0) == daemon.RELOAD_MAX


def test_the_listening_socket_says_tcp_so_responses_are_not_delayed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; without it a
    # keep-alive client waits ~40 ms for each response (Nagle and delayed ACKs)
    monkeypatch.setenv("JAZ_HOME", str(tmp_path / "home"))
    config = parse_config(f'listen = "127.0.0.1:0"\ndatabase = "{tmp_path / "jaz.db"}"\n'
                          f'jobnets = "{tmp_path}"\ncalendars = "{tmp_path}"\n')
    d = daemon.Daemon(config)
    sock = d._listen()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
        d.core.close()


def test_a_changed_jobnet_is_planned_again_from_now(env: Any) -> None:
    path = env.folder / "daily.toml"
    path.write_text('[schedule]\ncron = "0 * * * *"\n[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    scheduler.tick(env.clock.now())
    planned = core.store.list_runs(status=[RunState.SCHEDULED])
    assert len(planned) == 10 and all(r.scheduled_at.minute == 0 for r in planned)
    held = min(planned, key=lambda r: r.id)
    core.store.update_run(held.id, status=RunState.HELD)
    path.write_text('[schedule]\ncron = "30 * * * *"\n[jobs.a]\nrun = "echo v2"\n')
    os.utime(path, ns=(1, 1))   # a change the registry sees even within one mtime tick
    core.registry.reload()
    env.clock.advance(60)
    scheduler.tick(env.clock.now())
    again = core.store.list_runs(status=[RunState.SCHEDULED])
    assert again and all(r.scheduled_at.minute == 30 for r in again)
    new_version = core.registry.get("daily").jobnet.hash
    assert {r.version for r in again} == {new_version}
    assert core.store.get_run(held.id).status == RunState.HELD   # the operator's stays
    assert any(e.kind == "replanned" for e in core.store.list_events())


def test_due_runs_are_started_before_the_runs_ahead_are_counted(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule lag: a tick first decides on the due runs of the jobnets that have
    one (start, or skip under overlap = skip) and drives them, and only then counts the
    runs ahead of every jobnet and materialises more."""
    (env.folder / "minutely.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                              'overlap = "allow"\n[jobs.a]\nrun = "true"\n')
    (env.folder / "single.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                            'overlap = "skip"\n[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    scheduler.tick(env.clock.now())
    env.clock.advance(60)
    scheduler.tick(env.clock.now())        # both start their 10:01 run
    running = {r.jobnet: r.id for r in core.store.list_runs(status=[RunState.RUNNING])}
    env.clock.advance(60)                  # 10:02: "single" is still running
    seen: list[tuple[list[int], dict[str, RunState]]] = []
    count = core.store.waiting

    def waiting(after: datetime) -> Any:   # what had happened when the count was made
        runs = core.store.list_runs(due_by=env.clock.now(), top_level=True)
        seen.append((list(env.driven), {r.jobnet: r.status for r in runs
                                        if r.scheduled_at == env.clock.now()}))
        return count(after)

    monkeypatch.setattr(core.store, "waiting", waiting)
    scheduler.tick(env.clock.now())
    driven, states = seen[0]
    assert states == {"minutely": RunState.RUNNING, "single": RunState.SKIPPED}
    assert len(driven) == 3 and running["single"] not in driven[2:]
    assert len(core.store.list_runs(jobnet="minutely", status=[RunState.SCHEDULED])) == 10


def test_a_hurried_tick_that_started_runs_leaves_the_rest_for_a_moment_later(
        env: Any) -> None:
    """The daemon's ticks hurry: one that started due runs returns at once and asks to
    be called again AFTER_STARTS later, when it counts and materialises the runs ahead
    (the runs just started get the CPU first)."""
    from jaz.server.scheduler import AFTER_STARTS

    (env.folder / "minutely.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                              '[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    scheduler.tick(env.clock.now(), hurry=True)          # nothing due: materialised
    assert len(core.store.list_runs(status=[RunState.SCHEDULED])) == 10
    env.clock.advance(60)
    assert scheduler.tick(env.clock.now(), hurry=True) == env.clock.now() + AFTER_STARTS
    assert len(core.store.list_runs(status=[RunState.RUNNING])) == 1
    assert len(core.store.list_runs(status=[RunState.SCHEDULED])) == 9   # not yet
    env.clock.advance(AFTER_STARTS.total_seconds())
    scheduler.tick(env.clock.now(), hurry=True)
    assert len(core.store.list_runs(status=[RunState.SCHEDULED])) == 10


def test_a_late_run_is_flagged_and_notified_once(env: Any, tmp_path: Path) -> None:
    heard = tmp_path / "heard.log"
    (env.folder / "daily.toml").write_text(
        '[schedule]\ntimes = ["10:30"]\ntimezone = "UTC"\n'
        'deadline = { start_by = "10:45" }\n[jobs.a]\nrun = "true"\n')
    core = env.core(f'[notify]\ncommand = \'echo "$JAZ_EVENT $JAZ_JOBNET $JAZ_RUN_ID" '
                    f'>> {heard}\'\n')
    try:
        scheduler = Scheduler(core)
        scheduler.tick(env.clock.now())                       # 10:00: materialised
        run = next(r for r in core.store.list_runs(jobnet="daily")
                   if r.scheduled_at == T0 + timedelta(minutes=30))
        core.act("hold", run.id, None, user="test")           # an operator holds it
        env.clock.advance(50 * 60)                            # 10:50: past start_by
        scheduler.tick(env.clock.now())
        env.clock.advance(60)
        scheduler.tick(env.clock.now())                       # once, not at every tick
        wait_for(lambda: heard.exists() and heard.read_text(), "the notification")
        assert core.store.get_run(run.id).warning.startswith("late:start_by")
        assert heard.read_text().split() == ["late", "daily", str(run.id)]
        kinds = [e.kind for e in core.store.list_events(run_id=run.id)]
        assert kinds.count("run_late") == 1
    finally:
        core.close()


def test_a_decision_on_a_run_an_operator_changed_since_is_dropped(env: Any) -> None:
    # the scheduler decides on runs it read; an operator may hold, skip or re-time one of
    # them before the decision is applied: the run stays as the operator left it
    from jaz.engine import planner
    from jaz.errors import StateError

    (env.folder / "daily.toml").write_text('[schedule]\ntimes = ["10:30", "11:30"]\n'
                                           'timezone = "UTC"\n[jobs.a]\nrun = "true"\n')
    core = env.core()
    try:
        scheduler = Scheduler(core)
        scheduler.tick(env.clock.now())
        first, second = sorted((r for r in core.store.list_runs(jobnet="daily")),
                               key=lambda r: r.id)[:2]
        core.act("hold", first.id, None, user="test")
        core.retime(second.id, T0 + timedelta(hours=5), user="test")
        scheduler._apply_all([planner.Start(first.id), planner.Skip(second.id, "x")],
                             env.clock.now())
        assert core.store.get_run(first.id).status == RunState.HELD
        assert core.store.get_run(second.id).status == RunState.SCHEDULED
        assert env.driven == []
        # and an operator's action on a run read before the scheduler changed it
        with pytest.raises(StateError, match="is held now"):
            core._skip_run(first, "test")                  # `first` as read: scheduled
    finally:
        core.close()


def test_a_hurried_tick_arms_the_next_fires_runs_just_before_it(env: Any) -> None:
    """The daemon's ticks arm the next fire's runs ARM_LEAD before it (`Core.arm`), in a
    tick that does nothing else, and the fire's tick starts them as always."""
    (env.folder / "minutely.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                              '[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    fire = T0 + timedelta(minutes=1)
    scheduler.tick(env.clock.now(), hurry=True)          # materialised; IDLE comes first
    env.clock.advance(58)
    assert scheduler.tick(env.clock.now(), hurry=True) == fire - ARM_LEAD
    assert core.armed() == {}
    env.clock.advance((fire - ARM_LEAD - env.clock.now()).total_seconds())
    assert scheduler.tick(env.clock.now(), hurry=True) == fire
    due = core.store.list_runs(status=[RunState.SCHEDULED], due_by=fire)
    assert [r.scheduled_at for r in due] == [fire]
    assert list(core.armed()) == [due[0].id]
    assert core.store.list_runs(status=[RunState.RUNNING]) == []   # armed, not started
    env.clock.advance(ARM_LEAD.total_seconds())
    scheduler.tick(env.clock.now(), hurry=True)
    assert env.driven == [due[0].id]
    assert core.service.run(due[0].id).status == RunState.RUNNING


def test_a_tick_woken_early_does_not_arm_and_plans_as_usual(env: Any) -> None:
    (env.folder / "minutely.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                              '[jobs.a]\nrun = "true"\n')
    core = env.core()
    scheduler = Scheduler(core)
    fire = T0 + timedelta(minutes=1)
    scheduler.tick(env.clock.now(), hurry=True)
    env.clock.advance(58)
    assert scheduler.tick(env.clock.now(), hurry=True) == fire - ARM_LEAD
    env.clock.advance(0.5)   # woken before its time (a reload, an operator's run)
    assert scheduler.tick(env.clock.now(), hurry=True) == fire - ARM_LEAD
    assert core.armed() == {}
    env.clock.advance((fire - ARM_LEAD - env.clock.now()).total_seconds())
    assert scheduler.tick(env.clock.now(), hurry=True) == fire
    (armed,) = core.armed().values()
    env.clock.advance(0.05)  # woken between the arming and the fire: waits for the fire
    assert scheduler.tick(env.clock.now(), hurry=True) == fire
    assert list(core.armed().values()) == [armed]   # not armed again
    assert core.store.list_runs(status=[RunState.RUNNING]) == []


def test_the_last_tick_is_read_from_the_database_once(env: Any) -> None:
    """The scheduler is the only writer of its last tick: read once, then kept (a read
    at every tick cost ~0.5 ms at each fire); a restarted scheduler reads it again."""
    (env.folder / "minutely.toml").write_text('[schedule]\ncron = "* * * * *"\n'
                                              '[jobs.a]\nrun = "true"\n')
    core = env.core()
    statements: list[str] = []
    core.store._db.set_trace_callback(statements.append)
    scheduler = Scheduler(core)
    for _ in range(3):
        scheduler.tick(env.clock.now())
        env.clock.advance(1)
    reads = [s for s in statements if "scheduler.last_tick" in s and "SELECT" in s.upper()]
    writes = [s for s in statements if "scheduler.last_tick" in s and "SELECT" not in s.upper()]
    assert len(reads) == 1 and len(writes) == 3
    assert core.store.get_state("scheduler.last_tick") == (env.clock.now() - timedelta(
        seconds=1)).isoformat()
