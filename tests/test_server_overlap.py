"""`overlap = "replace"` through a real core: the scheduler stops the run still running
(its jobs killed) and starts the new one, without holding up the scheduler (a stop that
waited for the driver's turn inside the scheduler's transaction used to hang both).
The scheduler's time is a fake clock; the runs are driven for real."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import real_core, wait_for

from jaz.engine.clock import FakeClock
from jaz.engine.model import JobState, RunState
from jaz.server.core import Core
from jaz.server.scheduler import Scheduler

T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Core]:
    core = real_core(tmp_path, monkeypatch, {
        "long": '[schedule]\ncron = "* * * * *"\noverlap = "replace"\n'
                '[jobs.a]\nrun = "sleep 30"\n'}, clock=FakeClock(T0))
    yield core
    for run_id in core.running():
        core.act("stop", run_id, None, user="test")
    wait_for(lambda: not core.running(), "the runs to stop")
    core.close()


def tick(scheduler: Scheduler, core: Core) -> None:
    """One tick, on a thread of its own: it must not hang."""
    done = threading.Thread(target=scheduler.tick, args=(core.clock.now(),), daemon=True)
    done.start()
    done.join(15)
    assert not done.is_alive(), "the scheduler's tick hung"


def test_replace_stops_the_running_run_and_starts_the_new_one(core: Core) -> None:
    clock = core.clock
    assert isinstance(clock, FakeClock)
    scheduler = Scheduler(core)
    tick(scheduler, core)                       # materialises the fires ahead
    clock.advance(60)
    tick(scheduler, core)                       # 10:01 starts
    (first,) = [r for r in core.service.runs() if r.status == RunState.RUNNING]
    wait_for(lambda: core.service.jobs(first.id)[0].status == JobState.RUNNING, "sleep 30")
    clock.advance(60)
    tick(scheduler, core)                       # 10:02 replaces it
    wait_for(lambda: core.service.run(first.id).status == RunState.STOPPED, "the old run")
    assert "replaced by run" in core.service.run(first.id).message
    (second,) = [r for r in core.service.runs() if r.status == RunState.RUNNING]
    assert second.id != first.id and second.scheduled_at == T0 + timedelta(minutes=2)
    wait_for(lambda: core.service.jobs(second.id)[0].status == JobState.RUNNING, "its job")
    assert core.service.jobs(first.id)[0].status == JobState.STOPPED
